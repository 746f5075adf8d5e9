/* check.c - static checks (placeholder, filled in below) */
#include "fhirpath/fhirpath_int.h"

ehr_status fp_check(const ehr_fhirpath_expr *e, const ehr_fhirpath_options *opts, ehr_err *err)
{
    (void)e;
    (void)opts;
    (void)err;
    return EHR_OK;
}
