#ifndef SWAPGATE_CMOSQUITTO_SHIM_H
#define SWAPGATE_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <errno.h>
#include <malloc.h>
static inline int cmosquitto_errno(void) { return errno; }

/* Plain-int views of the C enums and macros MQTTLink needs, so the Swift side does not
 * depend on how each enum happens to be imported (struct with rawValue, signedness). */
static inline int cmosquitto_prop_response_topic(void) { return MQTT_PROP_RESPONSE_TOPIC; }
static inline int cmosquitto_prop_correlation_data(void) { return MQTT_PROP_CORRELATION_DATA; }
static inline int cmosquitto_prop_session_expiry_interval(void) { return MQTT_PROP_SESSION_EXPIRY_INTERVAL; }
static inline int cmosquitto_prop_maximum_packet_size(void) { return MQTT_PROP_MAXIMUM_PACKET_SIZE; }
static inline int cmosquitto_sub_opt_retain_as_published(void) { return MQTT_SUB_OPT_RETAIN_AS_PUBLISHED; }
static inline int cmosquitto_rc_unsupported_protocol_version(void) { return MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION; }
/* glibc: give the heap's free pages back to the system (after a large message). */
static inline void cmosquitto_malloc_trim(void) { (void)malloc_trim(0); }
static inline int cmosquitto_protocol_v311(void) { return MQTT_PROTOCOL_V311; }
static inline int cmosquitto_protocol_v5(void) { return MQTT_PROTOCOL_V5; }
static inline unsigned int cmosquitto_max_payload(void) { return MQTT_MAX_PAYLOAD; }

static inline int cmosquitto_set_protocol_version(struct mosquitto *mosq, int version) {
    return mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, version);
}
static inline int cmosquitto_set_send_maximum(struct mosquitto *mosq, int value) {
    return mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, value);
}
static inline int cmosquitto_set_tcp_nodelay(struct mosquitto *mosq, int value) {
    return mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, value);
}
static inline int cmosquitto_set_tls_use_os_certs(struct mosquitto *mosq, int value) {
    return mosquitto_int_option(mosq, MOSQ_OPT_TLS_USE_OS_CERTS, value);
}

/* libmosquitto error codes used by MQTTLink, as plain ints. */
static const int CMOSQ_ERR_SUCCESS = MOSQ_ERR_SUCCESS;
static const int CMOSQ_ERR_NOMEM = MOSQ_ERR_NOMEM;
static const int CMOSQ_ERR_INVAL = MOSQ_ERR_INVAL;
static const int CMOSQ_ERR_NO_CONN = MOSQ_ERR_NO_CONN;
static const int CMOSQ_ERR_CONN_LOST = MOSQ_ERR_CONN_LOST;
static const int CMOSQ_ERR_TLS = MOSQ_ERR_TLS;
static const int CMOSQ_ERR_PAYLOAD_SIZE = MOSQ_ERR_PAYLOAD_SIZE;
static const int CMOSQ_ERR_NOT_SUPPORTED = MOSQ_ERR_NOT_SUPPORTED;
static const int CMOSQ_ERR_ERRNO = MOSQ_ERR_ERRNO;
static const int CMOSQ_ERR_MALFORMED_UTF8 = MOSQ_ERR_MALFORMED_UTF8;
static const int CMOSQ_ERR_OVERSIZE_PACKET = MOSQ_ERR_OVERSIZE_PACKET;
#endif
