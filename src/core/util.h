/*
 * util.h - time, ids, logging: small services every module uses.
 */
#ifndef EHR_CORE_UTIL_H
#define EHR_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Current time as a FHIR instant with milliseconds, "2026-11-23T18:39:04.123Z". */
#define EHR_INSTANT_LEN 32
void ehr_time_now(char out[EHR_INSTANT_LEN]);
/* Microseconds since the Unix epoch. */
int64_t ehr_time_now_us(void);
/* Format microseconds since the epoch as a FHIR instant (millisecond precision). */
void ehr_time_format(int64_t us, char out[EHR_INSTANT_LEN]);
/* Format as an HTTP date (RFC 7231), "Mon, 23 Nov 2026 18:39:04 GMT". */
void ehr_time_http(int64_t us, char out[40]);
/*
 * Parse a FHIR date, dateTime or instant into microseconds since the epoch
 * (the earliest moment it denotes; a value without a zone is taken as UTC).
 * Returns false when s is not one.
 */
bool ehr_time_parse(const char *s, int64_t *us);

/* A new random resource id: 32 lowercase hex characters (128 random bits) */
#define EHR_ID_LEN 33
void ehr_id_new(char out[EHR_ID_LEN]);
/* Fill buf with cryptographically random bytes. */
void ehr_random(void *buf, size_t len);

typedef enum { EHR_LOG_ERROR, EHR_LOG_WARN, EHR_LOG_INFO, EHR_LOG_DEBUG } ehr_log_level;
/* Set the least important level that is printed (default INFO). */
void ehr_log_set_level(ehr_log_level lv);
/*
 * Log one line to stderr. Never pass protected health information: log
 * resource types, ids of requests, statuses and counts, not content.
 */
void ehr_log(ehr_log_level lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
