/*
 * mllp.h - HL7 v2 over TCP with the Minimal Lower Layer Protocol (HL7 v2.5.1
 * Implementation Guide, Appendix C: a message is framed as <VT> message
 * <FS><CR>, VT = 0x0B, FS = 0x1C, CR = 0x0D).
 *
 * The listener runs an accept thread and one thread per connection, up to
 * a configured number of connections. On each connection, messages are
 * handled in order: stored, applied and acknowledged by the engine
 * (engine.h), the ACK written back in its own frame. Framing problems do
 * not drop the connection: bytes outside a frame are skipped (and counted
 * in the log, never logged themselves); a frame over the size limit is
 * discarded up to its end and answered AR; a frame ended by FS without CR
 * is taken as ended.
 *
 * MLLP carries no credentials: the listener acts as the trusted system
 * user "mllp" with the peer's address in every audit record. Bind it to a
 * private interface or put it behind a VPN or TLS tunnel (docs/hl7v2.md).
 */
#ifndef EHR_HL7V2_MLLP_H
#define EHR_HL7V2_MLLP_H

#include <stdint.h>

#include "core/buf.h"
#include "hl7v2/engine.h"

#define EHR_MLLP_VT 0x0B
#define EHR_MLLP_FS 0x1C
#define EHR_MLLP_CR 0x0D

typedef struct ehr_mllp_server ehr_mllp_server;

typedef struct ehr_mllp_config {
    const char *bind;         /* NULL: all interfaces */
    uint16_t port;            /* 0: pick a free one (ehr_mllp_server_port) */
    unsigned max_connections; /* 0: 64; more wait in the listen backlog */
    unsigned idle_seconds;    /* close a connection silent this long (0: 600) */
} ehr_mllp_config;

/* Start listening (engine borrowed). */
ehr_status ehr_mllp_server_start(ehr_hl7_engine *engine, const ehr_mllp_config *cfg,
                                 ehr_mllp_server **out, ehr_err *err);
uint16_t ehr_mllp_server_port(const ehr_mllp_server *s);
/* Stop accepting, close every connection (a message being handled is
   finished first) and free. */
void ehr_mllp_server_stop(ehr_mllp_server **s);

/*
 * Client side: connect to host:port (fd returned), send one message framed,
 * and read frames into ack until one that is an application ACK or a
 * reject arrives (enhanced mode may send a commit ACK first; both are
 * appended, each ending in CR). timeout in seconds for each step.
 */
ehr_status ehr_mllp_connect(const char *host, uint16_t port, int timeout, int *fd, ehr_err *err);
ehr_status ehr_mllp_exchange(int fd, const char *msg, size_t len, int timeout, ehr_buf *ack,
                             ehr_err *err);

#endif
