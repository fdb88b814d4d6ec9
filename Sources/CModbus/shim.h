#ifndef SWAPGATE_CMODBUS_SHIM_H
#define SWAPGATE_CMODBUS_SHIM_H
#include <modbus/modbus.h>
#include <errno.h>

/* The EMBX* macros do not import into Swift: expose them as functions. */
static inline int cmodbus_embxilfun(void) { return EMBXILFUN; }
static inline int cmodbus_embxiladd(void) { return EMBXILADD; }
static inline int cmodbus_embxilval(void) { return EMBXILVAL; }
static inline int cmodbus_embxsfail(void) { return EMBXSFAIL; }
static inline int cmodbus_embxsbusy(void) { return EMBXSBUSY; }
static inline int cmodbus_embbadcrc(void) { return EMBBADCRC; }
static inline int cmodbus_embbaddata(void) { return EMBBADDATA; }
static inline int cmodbus_embbadexc(void) { return EMBBADEXC; }
static inline int cmodbus_embmdata(void) { return EMBMDATA; }
static inline int cmodbus_embbadslave(void) { return EMBBADSLAVE; }
static inline int cmodbus_errno(void) { return errno; }
#endif
