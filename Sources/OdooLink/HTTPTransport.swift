// The only Swift in swapgate that touches libcurl (CCurl): HTTP/1.1 POSTs of one fixed URL, on libcurl's multi
// interface driven by one thread of its own (never the Swift cooperative pool).
//
// Why one thread and a multi handle rather than a blocking curl_easy_perform per request: the multi handle owns the
// connection cache (keep-alive across requests whatever easy handle carries them), and curl_multi_wakeup interrupts
// its poll at once, so a cancelled request ends promptly (curl's progress callback alone runs only about once a
// second while a connection is idle). Concurrency stays bounded by OdooClient's AsyncLimiter; easy handles are pooled.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CCurl
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// libcurl's process-wide initialisation, run once (Swift globals are initialised exactly once, thread-safely).
private let curlGlobalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

/// What ``HTTPTransport`` sends: one URL, fixed headers, the limits.
struct HTTPTransportSettings: Sendable {
    var url: String
    /// `Name: value` lines (secrets allowed: they never leave libcurl's request).
    var headers: [String]
    var connectTimeoutMilliseconds: Int
    var requestTimeoutMilliseconds: Int
    /// Extra trusted CA certificates (PEM), added to the system trust store; nil: the system store alone.
    var extraTrustRootsPEM: [UInt8]?
    var maxResponseBytes: Int
    /// Easy handles kept for reuse and connections kept alive (the in-flight bound is the caller's).
    var maxConnections: Int
    /// Idle connections older than this are not reused (closed instead).
    var idleConnectionSeconds: Int = 60
}

/// One exchange's result: an HTTP answer (any status), or why there is none (a short text without secrets).
enum HTTPTransportResult: Sendable {
    case response(status: Int, headers: [(String, String)], body: [UInt8])
    case failure(String)
}

/// POSTs bodies to ``HTTPTransportSettings/url``. Call ``shutdown()`` (or ``stop()``) to end its thread; a
/// transport dropped without either stops when its owner calls ``stop()`` in its deinit.
final class HTTPTransport: @unchecked Sendable {
    // Touched by the I/O thread only (after init): the multi handle's transfers and the idle easy handles.
    private let multi: UnsafeMutableRawPointer
    private var running: [UnsafeMutableRawPointer: Transfer] = [:]
    private var idle: [EasyHandle] = []
    // Immutable after init.
    private let settings: HTTPTransportSettings
    private let headerList: UnsafeMutablePointer<curl_slist>?
    private let trustRoots: UnsafeMutableRawBufferPointer?

    private struct State {
        var submitted: [Transfer] = []
        var stopping = false
        var closed = false          // the multi handle is gone: no wake-ups any more
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    static let shutDownReason = "HTTP client is shut down"

    init(settings: HTTPTransportSettings) throws {
        guard curlGlobalInit == CURLE_OK else { throw HTTPTransportError("libcurl initialisation failed") }
        guard let multi = curl_multi_init() else { throw HTTPTransportError("libcurl: no multi handle") }
        self.multi = multi
        self.settings = settings
        var list: UnsafeMutablePointer<curl_slist>?
        // "Expect:" keeps curl from waiting for a 100-continue on larger bodies.
        for line in settings.headers + ["Expect:"] {
            guard let next = curl_slist_append(list, line) else { break }
            list = next
        }
        headerList = list
        if let extra = settings.extraTrustRootsPEM {
            let pem = Self.trustRootsPEM(extra: extra)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, pem.count), alignment: 1)
            buffer.copyBytes(from: pem)
            trustRoots = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<pem.count])
        } else {
            trustRoots = nil
        }
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, settings.maxConnections)
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, settings.maxConnections)
        try startThread()
    }

    /// The trusted roots when a CA file is configured: its certificates, then the system bundle. CURLOPT_CAINFO_BLOB
    /// takes the place of libcurl's default CA file, so the system bundle goes in too: the extra roots are added to
    /// the system trust store, not put in its place (docs/odoo.md). The default CA directory (/etc/ssl/certs on
    /// Debian) is consulted as well.
    static func trustRootsPEM(extra: [UInt8]) -> [UInt8] {
        var pem = extra
        if let system = defaultCABundlePath(), let bundle = FileManager.default.contents(atPath: system) {
            pem.append(UInt8(ascii: "\n"))
            pem.append(contentsOf: bundle)
        }
        return pem
    }

    /// libcurl's compiled-in CA file (`/etc/ssl/certs/ca-certificates.crt` on Debian), if any.
    static func defaultCABundlePath() -> String? {
        guard curlGlobalInit == CURLE_OK, let easy = curl_easy_init() else { return nil }
        defer { curl_easy_cleanup(easy) }
        var path: UnsafeMutablePointer<CChar>?
        guard ccurl_getinfo_string(easy, CURLINFO_CAINFO, &path) == CURLE_OK, let path else { return nil }
        return String(cString: path)
    }

    // MARK: Requests

    /// POSTs `body` and waits for the whole answer. Cancelling the calling task ends the exchange promptly
    /// (`.failure("cancelled")`).
    func post(_ body: [UInt8]) async -> HTTPTransportResult {
        let transfer = Transfer(body: body, maxResponseBytes: settings.maxResponseBytes)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<HTTPTransportResult, Never>) in
                transfer.continuation = continuation
                let accepted = state.withLock { s -> Bool in
                    guard !s.stopping else { return false }
                    s.submitted.append(transfer)
                    _ = curl_multi_wakeup(multi)
                    return true
                }
                if !accepted { continuation.resume(returning: .failure(Self.shutDownReason)) }
            }
        } onCancel: {
            transfer.cancelled.store(true, ordering: .releasing)
            wake()
        }
    }

    /// Ends every exchange (`.failure`), frees the handles and the thread; returns once the thread has ended.
    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.closed { return true }
                s.stopping = true
                s.exitWaiters.append(continuation)
                _ = curl_multi_wakeup(multi)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Asks the thread to end without waiting for it.
    func stop() {
        state.withLock { s in
            guard !s.closed else { return }
            s.stopping = true
            _ = curl_multi_wakeup(multi)
        }
    }

    private func wake() {
        state.withLock { s in if !s.closed { _ = curl_multi_wakeup(multi) } }
    }

    // MARK: The I/O thread

    private func startThread() throws {
        let retained = Unmanaged.passRetained(self).toOpaque()
        #if canImport(Darwin)
        var thread: pthread_t?
        #else
        var thread = pthread_t()
        #endif
        let rc = pthread_create(&thread, nil, { argument in
            #if canImport(Darwin)
            let transport = Unmanaged<HTTPTransport>.fromOpaque(argument).takeRetainedValue()
            #else
            let transport = Unmanaged<HTTPTransport>.fromOpaque(argument!).takeRetainedValue()
            #endif
            transport.run()
            return nil
        }, retained)
        guard rc == 0 else {
            Unmanaged<HTTPTransport>.fromOpaque(retained).release()
            curl_slist_free_all(headerList)
            trustRoots?.deallocate()
            curl_multi_cleanup(multi)
            throw HTTPTransportError("cannot start the HTTP thread (error \(rc))")
        }
        #if canImport(Darwin)
        if let thread { pthread_detach(thread) }
        #else
        pthread_detach(thread)
        #endif
    }

    private func run() {
        while true {
            let (new, stopping) = state.withLock { s -> ([Transfer], Bool) in
                defer { s.submitted.removeAll() }
                return (s.submitted, s.stopping)
            }
            if stopping {
                for transfer in new { transfer.finish(.failure(Self.shutDownReason)) }
                for (easy, transfer) in running { end(easy, transfer, .failure(Self.shutDownReason)) }
                break
            }
            for transfer in new {
                if transfer.cancelled.load(ordering: .acquiring) { transfer.finish(.failure("cancelled")); continue }
                start(transfer)
            }
            for (easy, transfer) in running where transfer.cancelled.load(ordering: .acquiring) {
                end(easy, transfer, .failure("cancelled"))
            }
            var stillRunning: Int32 = 0
            _ = curl_multi_perform(multi, &stillRunning)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                      let transfer = running[easy] else { continue }
                let code = ccurl_msg_result(message)
                end(easy, transfer, outcome(of: transfer, code: code))
            }
            // Sleeps until a socket is ready, curl's own timer is due, or a wake-up (new request, cancel, stop);
            // requests, cancellations and stop all wake it, so an idle client hardly ever wakes on its own.
            _ = curl_multi_poll(multi, nil, 0, running.isEmpty ? 30_000 : 1000, nil)
        }
        for handle in idle { curl_easy_cleanup(handle.easy); handle.errorBuffer.deallocate() }
        idle.removeAll()
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            curl_multi_cleanup(multi)
            defer { s.exitWaiters.removeAll() }
            return s.exitWaiters
        }
        curl_slist_free_all(headerList)
        trustRoots?.deallocate()
        for waiter in waiters { waiter.resume() }
    }

    private func start(_ transfer: Transfer) {
        guard let handle = idle.popLast() ?? makeHandle() else {
            transfer.finish(.failure("libcurl: no easy handle"))
            return
        }
        let easy = handle.easy
        transfer.handle = handle
        handle.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        _ = ccurl_setopt_pointer(easy, CURLOPT_WRITEDATA, context)
        _ = ccurl_setopt_pointer(easy, CURLOPT_HEADERDATA, context)
        _ = ccurl_setopt_pointer(easy, CURLOPT_XFERINFODATA, context)
        _ = ccurl_setopt_long(easy, CURLOPT_POSTFIELDSIZE, transfer.body.count)
        // COPYPOSTFIELDS: libcurl keeps its own copy of the body (POSTFIELDSIZE first, so binary-safe).
        let copied = transfer.body.isEmpty
            ? ccurl_setopt_string(easy, CURLOPT_COPYPOSTFIELDS, "")
            : transfer.body.withUnsafeMutableBytes { ccurl_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) }
        transfer.body = []
        guard copied == CURLE_OK, curl_multi_add_handle(multi, easy) == CURLM_OK else {
            transfer.finish(.failure("libcurl: cannot start the request"))
            recycle(handle)
            return
        }
        running[easy] = transfer
    }

    /// Removes a transfer from the multi handle, answers its caller and keeps (or frees) its easy handle.
    private func end(_ easy: UnsafeMutableRawPointer, _ transfer: Transfer, _ result: HTTPTransportResult) {
        _ = curl_multi_remove_handle(multi, easy)
        running[easy] = nil
        transfer.finish(result)
        if let handle = transfer.handle { recycle(handle) }
        transfer.handle = nil
    }

    private func recycle(_ handle: EasyHandle) {
        if idle.count < settings.maxConnections, !state.withLock({ $0.stopping }) {
            idle.append(handle)
        } else {
            curl_easy_cleanup(handle.easy)
            handle.errorBuffer.deallocate()
        }
    }

    /// A new easy handle with everything that does not change between requests.
    private func makeHandle() -> EasyHandle? {
        guard let easy = curl_easy_init() else { return nil }
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        var ok = true
        func check(_ code: CURLcode) { if code != CURLE_OK { ok = false } }
        check(ccurl_setopt_string(easy, CURLOPT_URL, settings.url))
        check(ccurl_setopt_long(easy, CURLOPT_POST, 1))
        check(ccurl_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList))
        check(ccurl_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1)))
        check(ccurl_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0))           // a redirect is an answer, never followed
        check(ccurl_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        check(ccurl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, settings.connectTimeoutMilliseconds))
        check(ccurl_setopt_long(easy, CURLOPT_TIMEOUT_MS, settings.requestTimeoutMilliseconds))
        check(ccurl_setopt_long(easy, CURLOPT_MAXAGE_CONN, settings.idleConnectionSeconds))
        check(ccurl_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1))
        check(ccurl_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2))
        check(ccurl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"))
        check(ccurl_setopt_string(easy, CURLOPT_PROXY, ""))   // never a proxy from http_proxy/https_proxy: Odoo direct
        if let trustRoots, let base = trustRoots.baseAddress {
            // CAINFO_BLOB replaces the default CA file, so the blob carries the system bundle too (see OdooClient);
            // the default CA directory stays in use as well. NOCOPY: the bytes live as long as this transport.
            check(ccurl_setopt_blob(easy, CURLOPT_CAINFO_BLOB, base, trustRoots.count, UInt32(CURL_BLOB_NOCOPY)))
        }
        check(ccurl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer))
        check(ccurl_setopt_write(easy, CURLOPT_WRITEFUNCTION, { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let n = size * count
            if transfer.received.count + n > transfer.maxResponseBytes {
                transfer.tooLarge = true
                return 0                                                    // aborts: CURLE_WRITE_ERROR
            }
            if let data, n > 0 {
                data.withMemoryRebound(to: UInt8.self, capacity: n) {
                    transfer.received.append(contentsOf: UnsafeBufferPointer(start: $0, count: n))
                }
            }
            return n
        }))
        check(ccurl_setopt_write(easy, CURLOPT_HEADERFUNCTION, { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let n = size * count
            guard let data, n > 0 else { return n }
            let line = data.withMemoryRebound(to: UInt8.self, capacity: n) {
                String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
            }
            transfer.headerLine(line)
            return n
        }))
        check(ccurl_setopt_long(easy, CURLOPT_NOPROGRESS, 0))
        check(ccurl_setopt_xferinfo(easy, { context, _, _, _, _ in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            return transfer.cancelled.load(ordering: .acquiring) ? 1 : 0   // 1 aborts: CURLE_ABORTED_BY_CALLBACK
        }))
        guard ok else {
            curl_easy_cleanup(easy)
            errorBuffer.deallocate()
            return nil
        }
        return EasyHandle(easy: easy, errorBuffer: errorBuffer)
    }

    /// The result of a finished transfer: the answer, or a short reason (libcurl's error text names host and port,
    /// never a header).
    private func outcome(of transfer: Transfer, code: CURLcode) -> HTTPTransportResult {
        guard let handle = transfer.handle else { return .failure("libcurl: lost handle") }
        let easy = handle.easy
        if code == CURLE_OK {
            var status = 0
            _ = ccurl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            return .response(status: status, headers: transfer.headers, body: transfer.received)
        }
        if transfer.tooLarge { return .failure("response body larger than \(settings.maxResponseBytes) bytes") }
        if transfer.cancelled.load(ordering: .acquiring) { return .failure("cancelled") }
        let detail = String(cString: handle.errorBuffer)
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        var osErrno = 0
        _ = ccurl_getinfo_long(easy, CURLINFO_OS_ERRNO, &osErrno)
        let system = osErrno != 0 ? String(cString: strerror(Int32(osErrno))) : nil
        switch code {
        case CURLE_COULDNT_CONNECT:
            return .failure("cannot connect: \(system ?? "failed") (\(text))")
        case CURLE_COULDNT_RESOLVE_HOST:
            return .failure("cannot resolve the host (\(text))")
        case CURLE_OPERATION_TIMEDOUT:
            var connected: curl_off_t = 0
            _ = ccurl_getinfo_off_t(easy, CURLINFO_CONNECT_TIME_T, &connected)
            return .failure(connected == 0 ? "connect timeout (\(text))" : "timed out (\(text))")
        case CURLE_PEER_FAILED_VERIFICATION:
            // The same token as the previous TLS stack's error, so logs and alerts keep matching.
            return .failure("TLS: CERTIFICATE_VERIFY_FAILED (\(text))")
        case CURLE_SSL_CONNECT_ERROR:
            return .failure("TLS handshake failed (\(text))")
        case CURLE_GOT_NOTHING:
            return .failure("connection closed by Odoo before an answer")
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE:
            return .failure("connection error: \(system ?? text) (\(text))")
        case CURLE_ABORTED_BY_CALLBACK:
            return .failure("cancelled")
        default:
            return .failure("transport error: \(text)")
        }
    }
}

struct HTTPTransportError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A pooled easy handle and its error buffer (CURL_ERROR_SIZE bytes).
private final class EasyHandle {
    let easy: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>
    init(easy: UnsafeMutableRawPointer, errorBuffer: UnsafeMutablePointer<CChar>) {
        self.easy = easy
        self.errorBuffer = errorBuffer
    }
}

/// One request in flight. `cancelled` is set by any thread; everything else is the I/O thread's (the submitter
/// hands it over under the transport's lock).
private final class Transfer: @unchecked Sendable {
    var body: [UInt8]
    var continuation: CheckedContinuation<HTTPTransportResult, Never>?
    let cancelled = Atomic<Bool>(false)
    var handle: EasyHandle?
    var received: [UInt8] = []
    var headers: [(String, String)] = []
    var tooLarge = false
    let maxResponseBytes: Int

    init(body: [UInt8], maxResponseBytes: Int) {
        self.body = body
        self.maxResponseBytes = maxResponseBytes
    }

    /// One header line from libcurl; a status line starts a new header block (after a 1xx answer).
    func headerLine(_ line: String) {
        if line.hasPrefix("HTTP/") { headers.removeAll(); return }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = String(line[..<colon])
        var value = Substring(line[line.index(after: colon)...])
        // Character.isWhitespace: "\r\n" is one Character (a grapheme), whitespace too.
        while let first = value.first, first.isWhitespace { value.removeFirst() }
        while let last = value.last, last.isWhitespace { value.removeLast() }
        headers.append((name, String(value)))
    }

    func finish(_ result: HTTPTransportResult) {
        let c = continuation
        continuation = nil
        received = []
        c?.resume(returning: result)
    }
}
