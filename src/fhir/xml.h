/*
 * xml.h - FHIR R4 XML (application/fhir+xml) read and write.
 *
 * ehr keeps resources as JSON (core/json.h trees, numbers as their exact
 * text). This module converts the XML form to that tree and back, driven
 * by the generated model (model.h), following FHIR R4 XML (2.6.1) and
 * JSON (2.6.2):
 *
 *   <birthDate id="a" value="1970"><extension url="u">...</extension></birthDate>
 *     <-> "birthDate": "1970", "_birthDate": {"id": "a", "extension": [...]}
 *   repeated primitives keep their "_given" array aligned with nulls;
 *   <valueQuantity> <-> "valueQuantity" (choice elements keep their name);
 *   <contained><Patient>...</Patient></contained> <-> "contained": [{"resourceType": ...}]
 *     (every element of type Resource: Bundle.entry.resource, ...);
 *   <div xmlns="http://www.w3.org/1999/xhtml">...</div> <-> "div": "<div ...>...</div>";
 *   the id attribute of a complex element and Extension@url <-> "id", "url".
 *
 * The narrative div travels as its exact text: reading XML takes the div's
 * bytes from the input as written, and writing embeds the JSON string as
 * is (after checking it is a well-formed XHTML div). So JSON -> XML -> JSON
 * gives back the same tree, with numbers and decimals (1.50, 1e3) kept as
 * written.
 *
 * A div read from XML that relies on namespaces declared further out (the
 * XHTML default namespace, a prefix used inside) gets those declarations
 * added to its start tag, so that the string stands alone.
 *
 * The input must be UTF-8 (FHIR R4 2.6.1: the only encoding; the encoding
 * declaration is ignored). Reading is hardened: no network, no DTD (a
 * DOCTYPE is an error, so no entity expansion), size and depth limits
 * below, and libxml2's own limits (no XML_PARSE_HUGE: 10 MB per attribute
 * value or text node, 256 levels of XML nesting). Element order in the
 * input is not checked (readers are lenient; the JSON tree has no order),
 * nor are primitive formats beyond what decides the JSON type (dates,
 * codes ... are the validator's job, fhir/validate.h); but unknown
 * elements and attributes, wrong namespaces, text where none may be,
 * repeats of single elements and values of the wrong shape for booleans
 * and numbers are errors.
 *
 * Everything the reader accepts, the writer writes back, and the result
 * reads back to the same tree (tests/fuzz/fuzz_xml.c checks both ways).
 *
 * Thread-safe once libxml2 is initialised: call ehr_fhir_xml_init() at
 * start-up before threads start (the functions below call it too).
 */
#ifndef EHR_FHIR_XML_H
#define EHR_FHIR_XML_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/status.h"
#include "fhir/outcome.h"

#define EHR_FHIR_XML_NS "http://hl7.org/fhir"
#define EHR_FHIR_XHTML_NS "http://www.w3.org/1999/xhtml"

/* Largest XML input accepted, in bytes. */
#define EHR_FHIR_XML_MAX_SIZE (256u * 1024 * 1024)
/* Deepest nesting of FHIR elements accepted (the div's XHTML inside
   counts against libxml2's own limit of 256). */
#define EHR_FHIR_XML_MAX_DEPTH 200

/* Initialise libxml2 (idempotent). Call once before starting threads. */
void ehr_fhir_xml_init(void);

/*
 * Parse a FHIR XML resource (root element in namespace http://hl7.org/fhir)
 * into the JSON tree that ehr_json_parse would give for its JSON form:
 * keys in document order (resourceType first), arrays where the model says
 * an element repeats, primitives typed by the model (boolean -> true/false,
 * integer, unsignedInt, positiveInt and decimal -> numbers keeping their
 * text, others -> strings).
 *
 * On error returns NULL: every problem found is appended to issues (if not
 * NULL) with a FHIRPath-style location ("Patient.name[0].given[1]",
 * "Observation.value.ofType(Quantity).unit"), and err gets the first one
 * (EHR_EINVAL; EHR_ENOMEM or EHR_ELIMIT when those were the cause).
 * The caller owns the result (json_decref).
 */
json_t *ehr_fhir_xml_to_json(const char *xml, size_t len, ehr_fhir_issues *issues, ehr_err *err);

/*
 * Serialise resource res (a JSON tree as ehr_json_parse gives) as FHIR XML,
 * appending to out: an XML declaration, then the resource with its elements
 * in definition order, the FHIR namespace on the root. pretty indents by
 * two spaces per level, one element per line (the narrative div is copied
 * as is). Returns EHR_EINVAL with err->msg and err->where set when res is
 * not FHIR JSON the XML form can hold (unknown property, wrong JSON type,
 * unaligned "_x" array, a div that is not well-formed XHTML, characters
 * XML 1.0 cannot carry); out may then hold a partial document.
 */
ehr_status ehr_fhir_json_to_xml(const json_t *res, bool pretty, ehr_buf *out, ehr_err *err);

#endif
