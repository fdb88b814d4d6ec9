#!/usr/bin/env python3
# Usage: python3 tools/linkmap-sizes.py LINK.map [TOP]: what each SwiftPM target (X.build) and static library (libX.a)
# contributes to a binary, from a GNU ld/gold map (-Xlinker -Map=FILE): the allocated input sections kept by the
# link (after --gc-sections), summed per group. Linker-made sections (relocations, GOT, eh_frame_hdr) are not counted,
# so the total is below the stripped size. See docs/board-footprint.md.
import re, sys, collections
# Sums the sizes of the input sections a GNU ld/gold map places in allocated output sections, per group:
# a SwiftPM target (X.build) or a static library (libX.a).
path = sys.argv[1]
sizes = collections.Counter()
out_alloc = {'.text','.rodata','.data','.bss','.data.rel.ro','.eh_frame','.gcc_except_table','.init_array','.fini_array','.tdata','.tbss','.rela.dyn','.eh_frame_hdr','swift5_typeref','swift5_reflstr','swift5_fieldmd','swift5_assocty','swift5_builtin','swift5_capture','swift5_types','swift5_protocols','swift5_protocol_conformances','swift5_replace','swift5_replac2','swift5_mpenum','swift5_accessible_functions','swift5_types2','swift5_entries','swift5_tests'}
started = False
cur = None
pending = None
line_re = re.compile(r'^\s+(\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$')
def group(f):
    m = re.search(r'/([^/]+)\.build/', f)
    if m: return m.group(1)
    m = re.search(r'/(lib[^/()]+\.a)\(', f)
    if m: return m.group(1)
    m = re.search(r'/(lib[^/]+\.so[^/]*)$', f)
    if m: return m.group(1)
    return 'other:' + f.split('/')[-1][:40]
for line in open(path, errors='replace'):
    if line.startswith('Linker script and memory map') or line.startswith('Memory map'): started = True; continue
    if not started: continue
    if line and not line[0].isspace():
        cur = line.split()[0] if line.strip() else cur
        continue
    m = line_re.match(line)
    if m:
        sec = m.group(1) or pending
        pending = None
        size = int(m.group(3), 16)
        f = m.group(4).strip()
        if size == 0 or not ('/' in f): continue
        if cur and (cur.startswith('.debug') or cur.startswith('.comment') or cur.startswith('.note') or cur.startswith('.gnu_debug') or cur in ('.symtab','.strtab','.shstrtab')): continue
        sizes[group(f)] += size
    else:
        s = line.strip()
        if s and ' ' not in s: pending = s
total = sum(sizes.values())
top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
for g, n in sizes.most_common(top): print(f"{n/1048576:8.2f} MiB  {g}")
print(f"{total/1048576:8.2f} MiB  total")
