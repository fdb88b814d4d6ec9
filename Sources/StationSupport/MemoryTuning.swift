// glibc's malloc, tuned for a board with little RAM (issue 13 item 3). Called first thing by the daemon.
#if canImport(Glibc)
import Glibc

@_silgen_name("mallopt") private func c_mallopt(_ param: Int32, _ value: Int32) -> Int32
@_silgen_name("malloc_trim") private func c_malloc_trim(_ pad: Int) -> Int32

public enum MemoryTuning {
    /// - M_ARENA_MAX 2: glibc gives each thread that meets contention its own arena (up to 8 per core), and memory
    ///   freed in one arena is not reused by another: with the Swift pool, NIO, libmosquitto's and SQLite's threads that
    ///   is megabytes of free-but-resident pages. Two arenas keep the heap compact; the daemon is not malloc-bound.
    /// - M_MMAP_THRESHOLD 256 KiB and M_TRIM_THRESHOLD 1 MiB, fixed: by default glibc raises both after the first large
    ///   block is freed (up to 32 MiB/64 MiB), so after one snapshot apply big buffers come from the heap and their pages
    ///   stay resident. Fixed, blocks above 256 KiB are mapped and unmapped on their own and the top of the heap is given
    ///   back once more than 1 MiB is free there.
    public static func applyDaemonSettings() {
        _ = c_mallopt(-8, 2)              // M_ARENA_MAX
        _ = c_mallopt(-3, 256 * 1024)     // M_MMAP_THRESHOLD
        _ = c_mallopt(-1, 1024 * 1024)    // M_TRIM_THRESHOLD
    }

    /// Gives free heap pages back to the kernel (every arena, not only the top of the main heap).
    public static func trim() { _ = c_malloc_trim(0) }
}
#else
public enum MemoryTuning {
    public static func applyDaemonSettings() {}
    public static func trim() {}
}
#endif
