import Foundation
import GatewayCore
import Testing

/// `mqtt.hosts` (several broker addresses) in the configuration, without I/O.
@Suite struct BrokerHostsConfigTests {
    static let base = """
    station: {id: TG-CFG-0003}
    abs: {allow_unsigned: true}
    store: {path: /tmp/never-opened.sqlite}

    """

    static func parse(_ yaml: String) throws -> GatewayConfiguration {
        try GatewayConfiguration.parse(base + yaml, baseDirectory: "/tmp")
    }

    static func problems(_ yaml: String) -> [String] {
        do { _ = try parse(yaml); return [] } catch let e as ConfigurationErrors { return e.errors.map { "\($0)" } } catch { return ["\(error)"] }
    }

    @Test func hostsListParses() throws {
        let c = try Self.parse("""
        mqtt:
          hosts: ["broker-1.fleet.example:8883", "10.0.0.2:1883", "[::1]:1884"]
        """)
        #expect(c.mqttAddresses.map(\.description) == ["broker-1.fleet.example:8883", "10.0.0.2:1883", "[::1]:1884"])
        #expect(c.mqttAddresses[2].host == "::1")
    }

    @Test func singleHostStillWorks() throws {
        let c = try Self.parse("mqtt: {host: broker.example, port: 8883}")
        #expect(c.mqttAddresses.map(\.description) == ["broker.example:8883"])
        let defaults = try Self.parse("")
        #expect(defaults.mqttAddresses.map(\.description) == ["127.0.0.1:1883"])
    }

    @Test func badListsAreRefusedWithTheirKey() {
        for (yaml, needle) in [
            ("mqtt: {hosts: [\"a:1883\"], host: b}", "not both"),
            ("mqtt: {hosts: [\"a:1883\"], port: 1884}", "not both"),
            ("mqtt: {hosts: []}", "non-empty list"),
            ("mqtt: {hosts: \"a:1883\"}", "non-empty list"),
            ("mqtt: {hosts: [\"a\"]}", "mqtt.hosts[0]"),
            ("mqtt: {hosts: [\"a:1883\", \"::1:1883\"]}", "mqtt.hosts[1]"),
            ("mqtt: {hosts: [\"a:99999\"]}", "mqtt.hosts[0]"),
            ("mqtt: {hosts: [\"a:1883\", \"a:1883\"]}", "listed twice"),
            ("mqtt: {hosts: [1883]}", "mqtt.hosts[0]"),
        ] {
            let p = Self.problems(yaml)
            #expect(p.contains { $0.contains(needle) }, "\(yaml): \(p)")
        }
    }
}
