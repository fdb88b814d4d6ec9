import Testing
@testable import ABSProtocol
@Test func absProtocolPending() { #expect(Bool(true)) }
