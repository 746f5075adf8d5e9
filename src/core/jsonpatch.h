/*
 * jsonpatch.h - JSON Patch (RFC 6902) over jansson trees.
 */
#ifndef EHR_CORE_JSONPATCH_H
#define EHR_CORE_JSONPATCH_H

#include <jansson.h>

#include "core/status.h"

/*
 * Apply patch (an array of operations) to *doc. On success *doc may have
 * been replaced (an operation on the root); on failure *doc is unchanged,
 * since the operations run on a copy. Returns EHR_EINVAL for a malformed
 * patch or a path that does not exist (err->where names the operation as
 * "/2" and the message says why) and EHR_EPRECONDITION when a "test"
 * operation fails.
 */
ehr_status ehr_json_patch(json_t **doc, const json_t *patch, ehr_err *err);

#endif
