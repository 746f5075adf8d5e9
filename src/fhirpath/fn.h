/*
 * fn.h - shared declarations of the FHIRPath function files (fn_*.c).
 */
#ifndef EHR_FHIRPATH_FN_H
#define EHR_FHIRPATH_FN_H

#include "fhirpath/fhirpath_int.h"

extern const fp_fn fp_fns_string[];
extern const size_t fp_n_fns_string;
extern const fp_fn fp_fns_convert[];
extern const size_t fp_n_fns_convert;
extern const fp_fn fp_fns_fhir[];
extern const size_t fp_n_fns_fhir;

/* Argument i as at most one item (tmp holds the collection). */
ehr_status fp_arg_single(fp_ctx *c, const fp_node *n, const fp_scope *s, int i, fp_coll *tmp,
                         const fp_item **out);
/* Argument i as an Integer; *present is false when it is empty. */
ehr_status fp_arg_int(fp_ctx *c, const fp_node *n, const fp_scope *s, int i, bool *present,
                      int64_t *v);
/* Argument i as a String; *p is NULL when it is empty. */
ehr_status fp_arg_str(fp_ctx *c, const fp_node *n, const fp_scope *s, int i, const char **p,
                      size_t *len);
/* The input as at most one item: an error for more. */
ehr_status fp_input_single(fp_ctx *c, const fp_node *n, const fp_coll *in, const fp_item **out);

#define FP_FN_DECL(name)                                                                           \
    ehr_status name(fp_ctx *c, const fp_node *n, const fp_scope *s, const fp_coll *in, fp_coll *out)

#endif
