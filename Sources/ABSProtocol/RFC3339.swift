// The RFC 3339 parser and formatter live in StationSupport (shared with the control API, which must not link
// ABSProtocol's crypto); re-exported so that `RFC3339` stays in scope here and for the modules importing ABSProtocol.
@_exported import StationSupport
