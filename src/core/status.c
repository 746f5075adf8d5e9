#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ehr_status_str(ehr_status st)
{
    switch (st) {
    case EHR_OK:
        return "ok";
    case EHR_ENOMEM:
        return "out of memory";
    case EHR_EINVAL:
        return "invalid input";
    case EHR_ENOTFOUND:
        return "not found";
    case EHR_EGONE:
        return "gone";
    case EHR_ECONFLICT:
        return "version conflict";
    case EHR_EEXISTS:
        return "already exists";
    case EHR_EIO:
        return "storage error";
    case EHR_ELIMIT:
        return "limit exceeded";
    case EHR_EUNSUPPORTED:
        return "not supported";
    case EHR_EMULTIPLE:
        return "multiple matches";
    case EHR_EBUSY:
        return "busy";
    case EHR_EPRECONDITION:
        return "precondition failed";
    case EHR_EFORBIDDEN:
        return "forbidden";
    case EHR_EUNPROCESSABLE:
        return "unprocessable";
    case EHR_EINTERNAL:
        return "internal error";
    }
    return "unknown status";
}

ehr_status ehr_err_set(ehr_err *err, ehr_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->where[0] = '\0';
    }
    return st;
}

ehr_status ehr_err_at(ehr_err *err, ehr_status st, const char *where, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    }
    return st;
}
