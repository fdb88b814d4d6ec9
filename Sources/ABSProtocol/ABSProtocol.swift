// The ABS command contract (signed envelopes, commands, replies) — being written.
