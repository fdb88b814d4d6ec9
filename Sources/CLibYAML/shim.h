#ifndef SWAPGATE_CLIBYAML_SHIM_H
#define SWAPGATE_CLIBYAML_SHIM_H
/* libyaml (Debian's libyaml-0-2), the YAML 1.1 parser; seen only by Sources/GatewayConfig/YAMLDocument.swift. */
#include <yaml.h>
#endif
