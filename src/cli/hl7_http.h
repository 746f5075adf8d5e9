/* hl7_http.h - POST /hl7v2 for ehr serve (hl7_http.c). */
#ifndef EHR_CLI_HL7_HTTP_H
#define EHR_CLI_HL7_HTTP_H

#include "hl7v2/engine.h"
#include "http/http.h"

/* An ehr_http_handler; ctx is the ehr_hl7_engine. Mount at "/hl7v2". */
int ehr_hl7_http_handler(void *ctx, ehr_http_request *req, ehr_http_response *res);

#endif
