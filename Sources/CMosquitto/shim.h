#ifndef SWAPGATE_CMOSQUITTO_SHIM_H
#define SWAPGATE_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <errno.h>
static inline int cmosquitto_errno(void) { return errno; }
#endif
