import Testing
@testable import OdooLink
@Test func odooLinkPending() { #expect(Bool(true)) }
