/*
 * status.h - the one status enum of ehr, and the error detail struct.
 *
 * Every fallible library function returns ehr_status; EHR_OK is zero.
 * The list is append-only: values are never renumbered, so logs and tests
 * can rely on them. Detail for humans goes into a caller-supplied ehr_err.
 */
#ifndef EHR_CORE_STATUS_H
#define EHR_CORE_STATUS_H

#include <stddef.h>

typedef enum {
    EHR_OK = 0,
    EHR_ENOMEM,         /* allocation failed */
    EHR_EINVAL,         /* input rejected: malformed or invalid */
    EHR_ENOTFOUND,      /* no such resource, type or thing */
    EHR_EGONE,          /* resource was deleted */
    EHR_ECONFLICT,      /* version conflict (If-Match mismatch) */
    EHR_EEXISTS,        /* already exists */
    EHR_EIO,            /* storage or file error */
    EHR_ELIMIT,         /* a configured limit was exceeded */
    EHR_EUNSUPPORTED,   /* valid request, but not supported by this server */
    EHR_EMULTIPLE,      /* a conditional operation matched more than one resource */
    EHR_EBUSY,          /* storage busy or temporarily unavailable */
    EHR_EPRECONDITION,  /* a precondition other than version failed */
    EHR_EFORBIDDEN,     /* access denied */
    EHR_EUNPROCESSABLE, /* well-formed but breaks a business rule (HTTP 422) */
    EHR_EINTERNAL,      /* a bug: an invariant did not hold */
} ehr_status;

/* Human-readable name of a status ("EHR_ENOTFOUND" -> "not found"). */
const char *ehr_status_str(ehr_status st);

/*
 * Error detail. The callee writes a message (and, where it knows one, the
 * location of the problem as a FHIRPath-style expression) when it returns a
 * status other than EHR_OK. Callers may pass NULL when they don't care.
 */
typedef struct ehr_err {
    char msg[512];
    char where[256];
} ehr_err;

/* printf-style: fill err->msg (and clear err->where); NULL err is allowed. */
ehr_status ehr_err_set(ehr_err *err, ehr_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As ehr_err_set, and also set the location. */
ehr_status ehr_err_at(ehr_err *err, ehr_status st, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
