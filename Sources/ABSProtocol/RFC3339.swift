import StationSupport

// The RFC 3339 parser and formatter live in StationSupport (shared with the control API, which must not link
// ABSProtocol's crypto). This name keeps `RFC3339` in scope for ABSProtocol and for the modules that import it.
public typealias RFC3339 = StationSupport.RFC3339
