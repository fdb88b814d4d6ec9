// GatewayCore's clients (swapgate, swapbench, the tests) see the configuration, the control API's types and the
// shared utilities (locks, wake-ups, socket addresses, system calls) through it.
@_exported import ControlProtocol
@_exported import GatewayConfig
@_exported import StationSupport
