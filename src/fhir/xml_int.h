/*
 * xml_int.h - private helpers shared by the FHIR XML reader (xml_read.c)
 * and writer (xml_write.c); defined in xml.c.
 */
#ifndef EHR_FHIR_XML_INT_H
#define EHR_FHIR_XML_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/status.h"
#include "fhir/model.h"

/* In XML, Element.id of every non-resource type and Extension.url are
   attributes, not child elements. */
bool ehr_fhir_xml_is_attribute(const ehr_fhir_type *t, const char *name);

/* integer, unsignedInt, positiveInt, decimal: JSON numbers. */
bool ehr_fhir_xml_is_number(ehr_fhir_prim p);

/* JSON number grammar (RFC 8259), which is also FHIR's decimal; with
   integer_only, no fraction or exponent. */
bool ehr_fhir_xml_number_shape(const char *s, size_t n, bool integer_only);

/* Why s is not a valid value of the integer type prim, NULL when it is. */
const char *ehr_fhir_xml_int_problem(ehr_fhir_prim prim, const char *s, size_t n);

/* Locations: cut back to len; append ".name"; append "[i]" (no printf:
   one step per element read or written). */
void ehr_fhir_xml_path_truncate(ehr_buf *b, size_t len);
ehr_status ehr_fhir_xml_path_name(ehr_buf *b, const char *name);
ehr_status ehr_fhir_xml_path_index(ehr_buf *b, size_t i);

#endif
