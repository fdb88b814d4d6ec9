// GatewayCore's clients (swapgate, swapbench, the tests) see the configuration and the control API's types
// through it, as before they had targets of their own.
@_exported import ControlProtocol
@_exported import GatewayConfig
