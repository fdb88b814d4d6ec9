// swift-tools-version:6.1
// swapgate — the edge gateway of an OVES battery swap station.
//
// Folder map (see README.md, "Architecture"):
//   Sources/CModbus, CMosquitto, CZlib    C system libraries, nothing else
//   Sources/ModbusLink                    the only Swift that touches libmodbus
//   Sources/MQTTLink                      the only Swift that touches libmosquitto
//   Sources/StationSupport                shared utilities, no dependencies: Mutex-based Locked, Wakeup, ReadyFlag,
//                                         system-call wrapper, Unix socket address (sd_notify), disk reserve, RFC 3339
//   Sources/StationDomain                 pure station domain: map, slots, batteries, rules
//   Sources/Acquisition                   the bus owner: polls the cabinet, keeps the live model
//   Sources/StationStore                  SQLite (SQLiteLink): event log, entitlements, swaps, Odoo outbox, audit
//   Sources/ABSProtocol, OdooLink         ABS's signed command contract; Odoo's usage endpoint over HTTP
//   Sources/GatewayConfig                 the configuration model and its YAML loader/checker (daemon and swapctl)
//   Sources/ControlProtocol               the local control API's wire types and JSON coders (daemon and swapctl)
//   Sources/GatewayCore                   the daemon's services (Commands, Swaps, Events, MQTT, Telemetry, Services,
//                                         Control: the control API's server, Monitoring: health, metrics, logs)
//   Sources/swapgate                      the daemon's executable (run, check-config, store usage … on a file)
//   Sources/swapctl                       the technicians' CLI: ControlProtocol + GatewayConfig + the bus, no GatewayCore
//   Sources/swapbench                     benchmarks
//   firmware-sim/                         the simulated cabinet controller (station-sim)
import PackageDescription

let package = Package(
    name: "swapgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "swapgate", targets: ["swapgate"]),
        .executable(name: "swapctl", targets: ["swapctl"]),
        .executable(name: "station-sim", targets: ["station-sim"]),
        .executable(name: "swapbench", targets: ["swapbench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        // The local control socket and /metrics.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // C libraries: a module map and an umbrella header each, nothing more.
        .systemLibrary(name: "CModbus", path: "Sources/CModbus", pkgConfig: "libmodbus",
                       providers: [.apt(["libmodbus-dev"])]),
        .systemLibrary(name: "CMosquitto", path: "Sources/CMosquitto", pkgConfig: "libmosquitto",
                       providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),

        // SQLite (the station store), libyaml (the configuration file), OpenSSL's libcrypto (Ed25519 of ABS commands;
        // the board has it through libmosquitto anyway), libcurl on OpenSSL (Odoo's usage endpoint): issue 13.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLibYAML", path: "Sources/CLibYAML", pkgConfig: "yaml-0.1",
                       providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),

        // adjtimex(2) (<sys/timex.h>, in the C library): seen only by GatewayCore/Time/TrustedClock.swift.
        .systemLibrary(name: "CTimex", path: "Sources/CTimex"),

        // Adapters: the only Swift files that see C.
        .target(name: "ModbusLink", dependencies: ["CModbus"]),
        .target(name: "MQTTLink", dependencies: ["CMosquitto"]),
        .target(name: "SQLiteLink", dependencies: ["CSQLite"]),

        // Small shared utilities: no dependencies beyond the C library.
        .target(name: "StationSupport"),

        // The domain: no C, no I/O.
        .target(name: "StationDomain"),

        // The local control API's contract (docs/control-api.md): requests, answers, views, JSON coders.
        // Shared by the daemon and swapctl, so swapctl links neither the store, NIO, HTTP nor MQTT.
        .target(name: "ControlProtocol", dependencies: ["StationDomain", "StationSupport"]),

        // The ABS contract (pure: no I/O): signed envelopes and commands in; Contract/: every event, reply, status,
        // inventory and telemetry payload out, as Encodable types written by one JSON writer.
        // CZlib: raw DEFLATE envelopes (`enc: deflate`), seen only by ABSProtocol/Inflater.swift.
        .target(name: "ABSProtocol", dependencies: [
            "StationDomain", "StationSupport", "CZlib", "COpenSSL",
        ]),

        // Odoo's usage-log endpoint over HTTP: the only code that speaks HTTP.
        .target(name: "OdooLink", dependencies: ["StationDomain", "CCurl"]),

        .target(name: "Acquisition", dependencies: [
            "StationSupport", "StationDomain", "ModbusLink",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "StationStore", dependencies: ["StationSupport", "StationDomain", "SQLiteLink"]),
        // The configuration file: model, YAML loader, check report (the daemon's `check-config`, `swapctl config check`,
        // `swapctl direct --config`).
        .target(name: "GatewayConfig", dependencies: [
            "StationDomain", "StationSupport", "Acquisition", "ModbusLink", "ABSProtocol", "CLibYAML",
        ]),
        .target(name: "GatewayCore", dependencies: [
            "StationSupport", "ControlProtocol", "GatewayConfig", "StationDomain", "Acquisition", "StationStore", "MQTTLink", "ModbusLink", "ABSProtocol", "OdooLink", "CTimex",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),

        .executableTarget(name: "swapgate", dependencies: [
            "GatewayCore", "GatewayConfig", "ControlProtocol", "StationStore", "StationDomain",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // No GatewayCore: swapctl speaks the control protocol and, for `direct`, reads the bus itself.
        .executableTarget(name: "swapctl", dependencies: [
            "ControlProtocol", "GatewayConfig", "StationSupport", "Acquisition", "StationDomain", "ModbusLink",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "swapbench", dependencies: [
            // CModbus/CMosquitto: the benchmark's baselines are bare libmodbus and libmosquitto loops.
            "GatewayCore", "Acquisition", "ModbusLink", "MQTTLink", "StationStore", "StationDomain", "SimulatorCore", "CModbus", "CMosquitto",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Crypto", package: "swift-crypto"),     // signs the benchmark's ABS commands
            .product(name: "Logging", package: "swift-log"),
        ]),

        // The simulated cabinet controller firmware. It implements the map on its own,
        // independently of the gateway, so that each side checks the other.
        .target(name: "SimulatorCore", path: "firmware-sim/Sources/SimulatorCore"),
        .executableTarget(name: "station-sim", dependencies: [
            "SimulatorCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "firmware-sim/Sources/station-sim"),

        // Shared by the test targets: starting real peers and stopping them by PID.
        .target(name: "TestSupport", path: "Tests/TestSupport"),

        .testTarget(name: "StationDomainTests", dependencies: ["StationDomain"]),
        .testTarget(name: "StationSupportTests", dependencies: ["StationSupport"]),
        .testTarget(name: "SimulatorCoreTests", dependencies: ["TestSupport", "SimulatorCore"]),
        .testTarget(name: "AcquisitionTests", dependencies: ["TestSupport", 
            "Acquisition", "ModbusLink", "StationDomain", "SimulatorCore",
        ]),
        .testTarget(name: "MQTTLinkTests", dependencies: ["TestSupport", "MQTTLink"]),
        .testTarget(name: "SQLiteLinkTests", dependencies: ["SQLiteLink"]),
        .testTarget(name: "StationStoreTests", dependencies: [
            "TestSupport", "StationStore", "StationDomain", "SQLiteLink",
        ]),
        // End to end: the swapgate, station-sim and swapctl binaries against a real mosquitto.
        .testTarget(name: "GatewayTests", dependencies: [
            "TestSupport", "GatewayCore", "GatewayConfig", "ControlProtocol", "StationSupport", "StationStore", "StationDomain", "ABSProtocol",
        ]),
        // The use cases in-process, in seconds: a fake cabinet, the store over an in-memory SQLiteLink queue, a fixed clock.
        .testTarget(name: "OrchestrationTests", dependencies: [
            "GatewayCore", "StationStore", "StationDomain", "StationSupport", "ABSProtocol", "SQLiteLink",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ABSProtocolTests", dependencies: [
            "TestSupport", "ABSProtocol", "StationDomain",
            .product(name: "Crypto", package: "swift-crypto"),  // an independent signer for the tests
        ]),
        .testTarget(name: "OdooLinkTests", dependencies: ["TestSupport", "OdooLink", "StationDomain"]),
    ]
)
