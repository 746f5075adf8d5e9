/*
 * Unit tests for src/fhir/validate: one table of inputs, each with the
 * issues expected as "code@location" (a warning as "W:code@location"; no
 * location is "code@"). A case passes when every expected issue is found
 * and there are no other errors.
 *
 * Inputs are written with ' for " to keep the table readable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "fhir/validate.h"

#define MAXEXP 8

struct vcase {
    const char *name;
    const char *type; /* validate as, or NULL */
    const char *json;
    const char *expect[MAXEXP];
};

#define PAT "'resourceType':'Patient'"
#define OBS "'resourceType':'Observation','status':'final','code':{'text':'x'}"

static const struct vcase cases[] = {
    /* ---- valid ---- */
    {"minimal patient", NULL, "{" PAT "}", {NULL}},
    {"full patient",
     NULL,
     "{" PAT ",'id':'pat-1.a','meta':{'versionId':'1','lastUpdated':'2024-01-02T03:04:05.123Z',"
     "'profile':['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient']},"
     "'text':{'status':'generated','div':'<div "
     "xmlns=\\'http://www.w3.org/1999/xhtml\\'>Ann</div>'},"
     "'identifier':[{'system':'urn:oid:1.2.36.146.595.217.0.1','value':'12345'}],"
     "'active':true,'name':[{'use':'official','family':'Lee','given':['Ann','B']}],"
     "'gender':'female','birthDate':'2024-02-29','_birthDate':{'extension':[{'url':"
     "'http://hl7.org/fhir/StructureDefinition/patient-birthTime','valueDateTime':"
     "'2024-02-29T10:11:12+14:00'}]},'deceasedBoolean':false,'multipleBirthInteger':2,"
     "'address':[{'line':['1 Main St'],'city':'Boston','postalCode':'02101'}],"
     "'communication':[{'language':{'coding':[{'system':'urn:ietf:bcp:47','code':'en-US'}]}}],"
     "'contact':[{'relationship':[{'text':'mother'}],'name':{'text':'Jo'}}],"
     "'generalPractitioner':[{'reference':'Practitioner/1'}],"
     "'managingOrganization':{'reference':'urn:uuid:5f2ab8e2-1b6e-4b29-9a36-d4a1f2ae7c01'}}",
     {NULL}},
    {"observation quantity",
     NULL,
     "{" OBS ",'subject':{'reference':'Patient/p1'},'effectiveDateTime':'2019',"
     "'issued':'2019-03-04T05:06:07-05:00','valueQuantity':{'value':1.50e2,'unit':'mg',"
     "'system':'http://unitsofmeasure.org','code':'mg','comparator':'<='},"
     "'component':[{'code':{'text':'a'},'valueTime':'23:59:60.5'},"
     "{'code':{'text':'b'},'valueInteger':-2147483648},{'code':{'text':'c'},'valueBoolean':true}]}",
     {NULL}},
    {"primitive array with null alignment",
     NULL,
     "{" PAT ",'name':[{'given':['a',null,'c'],'_given':[null,{'extension':[{'url':'u',"
     "'valueString':'x'}]},{'id':'g3'}]}]}",
     {NULL}},
    {"extension only, no value",
     NULL,
     "{" PAT ",'_gender':{'extension':[{'url':'http://example.org/x','valueCode':'unk'}]}}",
     {NULL}},
    {"nested extensions",
     NULL,
     "{" PAT ",'extension':[{'url':'http://example.org/race','extension':[{'url':'ombCategory',"
     "'valueCoding':{'system':'urn:oid:2.16.840.1.113883.6.238','code':'2106-3'}},"
     "{'url':'text','valueString':'White'}]}]}",
     {NULL}},
    {"bundle with entries and contained",
     NULL,
     "{'resourceType':'Bundle','type':'transaction','entry':[{'fullUrl':'urn:uuid:"
     "5f2ab8e2-1b6e-4b29-9a36-d4a1f2ae7c01','resource':{" PAT ",'contained':[{"
     "'resourceType':'Organization','id':'o1','name':'Acme'}],'managingOrganization':"
     "{'reference':'#o1'}},'request':{'method':'POST','url':'Patient'}}]}",
     {NULL}},
    {"code with inner space",
     NULL,
     "{" OBS ",'valueCodeableConcept':{'coding':[{'code':'a b'}]}}",
     {NULL}},
    {"coding from another system",
     NULL,
     "{'resourceType':'Condition','subject':{'reference':'Patient/1'},'clinicalStatus':"
     "{'coding':[{'system':'http://snomed.info/sct','code':'55561003'}]}}",
     {NULL}},
    {"data type", "HumanName", "{'family':'Lee'}", {NULL}},
    {"primitive type", "date", "'2000-01'", {NULL}},
    {"oid", "oid", "'urn:oid:2.16.840.1.113883'", {NULL}},
    {"uuid", "uuid", "'urn:uuid:c757873d-ec9a-4326-a141-556f43239520'", {NULL}},
    {"base64", "base64Binary", "'SGVsbG8g\\nd29ybGQ='", {NULL}},
    {"decimal exponent", "decimal", "-0.5E-3", {NULL}},
    {"positiveInt", "positiveInt", "2147483647", {NULL}},
    {"unsignedInt zero", "unsignedInt", "0", {NULL}},
    {"markdown with newlines", "markdown", "'# a\\n\\n* b\\t'", {NULL}},
    {"instant", "instant", "'2015-02-07T13:28:17.239+02:00'", {NULL}},

    /* ---- the resource itself ---- */
    {"root not an object", NULL, "[]", {"structure@"}},
    {"root a string", NULL, "'Patient'", {"structure@"}},
    {"missing resourceType", NULL, "{'id':'1'}", {"required@"}},
    {"resourceType not a string", NULL, "{'resourceType':1}", {"structure@"}},
    {"unknown resourceType", NULL, "{'resourceType':'Patients'}", {"not-supported@"}},
    {"data type as resourceType", NULL, "{'resourceType':'HumanName'}", {"not-supported@"}},
    {"abstract resourceType",
     NULL,
     "{'resourceType':'DomainResource'}",
     {"structure@DomainResource"}},
    {"wrong type asked", "Observation", "{" PAT "}", {"structure@Patient"}},
    {"unknown type asked", "Nope", "{" PAT "}", {"not-supported@"}},

    /* ---- elements and JSON types ---- */
    {"unknown element",
     NULL,
     "{" PAT ",'foo':1,'birthdate':'2000'}",
     {"structure@Patient.foo", "structure@Patient.birthdate"}},
    {"unknown nested element",
     NULL,
     "{" PAT ",'name':[{'first':'A'}]}",
     {"structure@Patient.name[0].first"}},
    {"resourceType inside a data type",
     NULL,
     "{" PAT ",'name':[{'resourceType':'X','text':'a'}]}",
     {"structure@Patient.name[0].resourceType"}},
    {"boolean as string", NULL, "{" PAT ",'active':'true'}", {"structure@Patient.active"}},
    {"boolean as number", NULL, "{" PAT ",'active':1}", {"structure@Patient.active"}},
    {"integer as string",
     NULL,
     "{" PAT ",'multipleBirthInteger':'2'}",
     {"structure@Patient.multipleBirth.ofType(integer)"}},
    {"string as number",
     NULL,
     "{" PAT ",'name':[{'family':42}]}",
     {"structure@Patient.name[0].family"}},
    {"string as boolean", NULL, "{" PAT ",'birthDate':true}", {"structure@Patient.birthDate"}},
    {"primitive as object",
     NULL,
     "{" PAT ",'gender':{'value':'male'}}",
     {"structure@Patient.gender"}},
    {"complex as string",
     NULL,
     "{" PAT ",'maritalStatus':'M'}",
     {"structure@Patient.maritalStatus"}},
    {"array where single", NULL, "{" PAT ",'birthDate':['2000']}", {"structure@Patient.birthDate"}},
    {"single where array", NULL, "{" PAT ",'name':{'family':'Lee'}}", {"structure@Patient.name"}},
    {"single where array, primitive",
     NULL,
     "{" PAT ",'name':[{'given':'Ann'}]}",
     {"structure@Patient.name[0].given"}},
    {"null single", NULL, "{" PAT ",'birthDate':null}", {"structure@Patient.birthDate"}},
    {"null in complex array", NULL, "{" PAT ",'name':[null]}", {"structure@Patient.name[0]"}},

    /* ---- cardinality and choices ---- */
    {"missing required",
     NULL,
     "{'resourceType':'Observation'}",
     {"required@Observation.status", "required@Observation.code"}},
    {"missing required in backbone",
     NULL,
     "{" PAT ",'link':[{'type':'seealso'}]}",
     {"required@Patient.link[0].other"}},
    {"required elements present",
     NULL,
     "{'resourceType':'Flag','status':'active','code':{'text':'x'},"
     "'subject':{'reference':'Patient/1'}}",
     {NULL}},
    {"extension without value",
     NULL,
     "{" PAT ",'extension':[{'url':'http://example.org'}]}",
     {"invariant@Patient.extension[0]"}},
    {"two choice variants",
     NULL,
     "{" OBS ",'valueString':'a','valueBoolean':true}",
     {"structure@Observation.value.ofType(boolean)"}},
    {"choice with unknown type",
     NULL,
     "{" OBS ",'valueFoo':'a'}",
     {"structure@Observation.valueFoo"}},
    {"choice lowercase type",
     NULL,
     "{" OBS ",'valuestring':'a'}",
     {"structure@Observation.valuestring"}},
    {"0..0 in SimpleQuantity",
     NULL,
     "{'resourceType':'MedicationRequest','status':'active','intent':'order','subject':{"
     "'reference':'Patient/1'},'medicationCodeableConcept':{'text':'x'},'dispenseRequest':{"
     "'quantity':{'value':1,'comparator':'<'}}}",
     {"structure@MedicationRequest.dispenseRequest.quantity.comparator"}},

    /* ---- primitive formats ---- */
    {"bad id", NULL, "{" PAT ",'id':'a_b'}", {"value@Patient.id"}},
    {"id too long",
     "id",
     "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
     {"value@id"}},
    {"not a leap year", NULL, "{" PAT ",'birthDate':'2023-02-29'}", {"value@Patient.birthDate"}},
    {"day 31 in a 30-day month", "date", "'2024-04-31'", {"value@date"}},
    {"month 13", "date", "'2024-13'", {"value@date"}},
    {"year 0000", "date", "'0000'", {"value@date"}},
    {"date with time", "date", "'2024-01-01T00:00:00Z'", {"value@date"}},
    {"short month", "date", "'2024-1-01'", {"value@date"}},
    {"dateTime without zone",
     NULL,
     "{" OBS ",'effectiveDateTime':'2020-01-01T10:00:00'}",
     {"value@Observation.effective.ofType(dateTime)"}},
    {"dateTime without seconds", "dateTime", "'2020-01-01T10:00Z'", {"value@dateTime"}},
    {"dateTime hour 24", "dateTime", "'2020-01-01T24:00:00Z'", {"value@dateTime"}},
    {"dateTime zone +15", "dateTime", "'2020-01-01T10:00:00+15:00'", {"value@dateTime"}},
    {"instant without zone",
     NULL,
     "{" PAT ",'meta':{'lastUpdated':'2020-01-01T10:00:00.000'}}",
     {"value@Patient.meta.lastUpdated"}},
    {"instant date only", "instant", "'2020-01-01'", {"value@instant"}},
    {"time bad", "time", "'25:00:00'", {"value@time"}},
    {"time with zone", "time", "'10:00:00Z'", {"value@time"}},
    {"decimal as string", "decimal", "'1.5'", {"structure@decimal"}},
    {"integer out of range", "integer", "2147483648", {"value@integer"}},
    {"integer with fraction", "integer", "1.0", {"value@integer"}},
    {"integer with exponent", "integer", "1e3", {"value@integer"}},
    {"positiveInt zero", "positiveInt", "0", {"value@positiveInt"}},
    {"unsignedInt negative", "unsignedInt", "-1", {"value@unsignedInt"}},
    {"boolean word", "boolean", "'yes'", {"structure@boolean"}},
    {"uri with space",
     NULL,
     "{" PAT ",'identifier':[{'system':'http://a b','value':'1'}]}",
     {"value@Patient.identifier[0].system"}},
    {"oid bad", "oid", "'urn:oid:3.1'", {"value@oid"}},
    {"oid leading zero", "oid", "'urn:oid:1.02'", {"value@oid"}},
    {"uuid uppercase", "uuid", "'urn:uuid:C757873D-EC9A-4326-A141-556F43239520'", {"value@uuid"}},
    {"base64 bad char", "base64Binary", "'SGVsbG8*'", {"value@base64Binary"}},
    {"base64 bad length", "base64Binary", "'SGVsbG8'", {"value@base64Binary"}},
    {"code trailing space", NULL, "{" PAT ",'gender':'male '}", {"value@Patient.gender"}},
    {"code leading space", "code", "' a'", {"value@code"}},
    {"string control char",
     NULL,
     "{" PAT ",'name':[{'family':'a\\u0001b'}]}",
     {"value@Patient.name[0].family"}},
    {"empty string", NULL, "{" PAT ",'name':[{'family':''}]}", {"value@Patient.name[0].family"}},
    {"empty markdown", "markdown", "''", {"value@markdown"}},
    {"empty given in array",
     NULL,
     "{" PAT ",'name':[{'given':['A','']}]}",
     {"value@Patient.name[0].given[1]"}},

    /* ---- bindings ---- */
    {"code not in value set", NULL, "{" PAT ",'gender':'M'}", {"code-invalid@Patient.gender"}},
    {"code case matters", NULL, "{" PAT ",'gender':'Male'}", {"code-invalid@Patient.gender"}},
    {"status not in value set",
     NULL,
     "{'resourceType':'Observation','code':{'text':'x'},'status':'done'}",
     {"code-invalid@Observation.status"}},
    {"coding in value set system",
     NULL,
     "{'resourceType':'Condition','subject':{'reference':'Patient/1'},'clinicalStatus':{'coding':"
     "[{'system':'http://terminology.hl7.org/CodeSystem/condition-clinical','code':'gone'}]}}",
     {"code-invalid@Condition.clinicalStatus.coding[0].code"}},
    {"comparator",
     "Quantity",
     "{'value':1,'comparator':'=<'}",
     {"code-invalid@Quantity.comparator"}},
    {"binding skipped for incomplete value sets", "Attachment", "{'contentType':'x/y'}", {NULL}},

    /* ---- primitive extensions and arrays ---- */
    {"_element with value",
     NULL,
     "{" PAT ",'_birthDate':{'value':'2000'}}",
     {"structure@Patient.birthDate.value"}},
    {"_element not an object",
     NULL,
     "{" PAT ",'birthDate':'2000','_birthDate':'x'}",
     {"structure@Patient.birthDate"}},
    {"_element on complex", NULL, "{" PAT ",'_name':[{'id':'1'}]}", {"structure@Patient._name"}},
    {"_element empty", NULL, "{" PAT ",'_birthDate':{}}", {"structure@Patient.birthDate"}},
    {"_element unknown", NULL, "{" PAT ",'_foo':{'id':'a'}}", {"structure@Patient._foo"}},
    {"null without companion",
     NULL,
     "{" PAT ",'name':[{'given':['a',null]}]}",
     {"structure@Patient.name[0].given[1]"}},
    {"null in both",
     NULL,
     "{" PAT ",'name':[{'given':['a',null],'_given':[null,null]}]}",
     {"structure@Patient.name[0].given[1]"}},
    {"arrays misaligned",
     NULL,
     "{" PAT ",'name':[{'given':['a'],'_given':[null,{'id':'x'}]}]}",
     {"structure@Patient.name[0].given"}},
    {"companion not an array",
     NULL,
     "{" PAT ",'name':[{'given':['a'],'_given':{'id':'x'}}]}",
     {"structure@Patient.name[0].given"}},
    {"empty object", NULL, "{" PAT ",'name':[{}]}", {"structure@Patient.name[0]"}},
    {"empty array", NULL, "{" PAT ",'name':[]}", {"structure@Patient.name"}},
    {"only an id",
     NULL,
     "{" PAT ",'maritalStatus':{'id':'x'}}",
     {"invariant@Patient.maritalStatus"}},

    /* ---- nested resources ---- */
    {"contained invalid",
     NULL,
     "{" PAT ",'contained':[{'resourceType':'Observation','id':'o'}]}",
     {"required@Patient.contained[0].status", "required@Patient.contained[0].code"}},
    {"contained in contained",
     NULL,
     "{" PAT ",'contained':[{'resourceType':'Organization','id':'o','contained':[{"
     "'resourceType':'Organization','id':'p'}]}]}",
     {"invariant@Patient.contained[0]"}},
    {"contained with versionId",
     NULL,
     "{" PAT ",'contained':[{'resourceType':'Organization','id':'o','meta':{'versionId':'1'}}]}",
     {"invariant@Patient.contained[0]"}},
    {"contained not a resource",
     NULL,
     "{" PAT ",'contained':[{'id':'o'}]}",
     {"required@Patient.contained[0]"}},
    {"bundle entry invalid",
     NULL,
     "{'resourceType':'Bundle','type':'collection','entry':[{'resource':{" PAT
     "}},{'resource':{" PAT ",'birthDate':'1999-02-29','gender':'x'}}]}",
     {"value@Bundle.entry[1].resource.birthDate", "code-invalid@Bundle.entry[1].resource.gender"}},
    {"bundle without type", NULL, "{'resourceType':'Bundle'}", {"required@Bundle.type"}},

    /* ---- extensions, narrative, references ---- */
    {"extension without url",
     NULL,
     "{" PAT ",'extension':[{'valueString':'a'}]}",
     {"required@Patient.extension[0].url"}},
    {"extension value and extensions",
     NULL,
     "{" PAT
     ",'extension':[{'url':'u','valueString':'a','extension':[{'url':'v','valueInteger':1}]}]}",
     {"invariant@Patient.extension[0]"}},
    {"modifierExtension",
     NULL,
     "{" PAT ",'modifierExtension':[{'url':'u'}]}",
     {"invariant@Patient.modifierExtension[0]"}},
    {"narrative not xhtml",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'hello'}}",
     {"value@Patient.text.div"}},
    {"narrative with script",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>"
     "<script>alert(1)</script></div>'}}",
     {"invariant@Patient.text.div"}},
    {"narrative without xmlns",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'<div>a</div>'}}",
     {"W:value@Patient.text.div"}},
    {"narrative not well-formed",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>"
     "<p>a</div>'}}",
     {"value@Patient.text.div"}},
    {"narrative with a form",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>"
     "<form action=\\'x\\'>a</form></div>'}}",
     {"invariant@Patient.text.div"}},
    {"narrative with an event handler",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>"
     "<p onclick=\\'x()\\'>a</p></div>'}}",
     {"invariant@Patient.text.div"}},
    {"narrative with a javascript link",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>"
     "<a href=\\' javascript:x()\\'>a</a></div>'}}",
     {"invariant@Patient.text.div"}},
    {"narrative without content",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>"
     "<p> </p></div>'}}",
     {"invariant@Patient.text.div"}},
    {"narrative with an HTML entity",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>"
     "a&nbsp;b</div>'}}",
     {"value@Patient.text.div"}},
    {"narrative in another namespace",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'<div xmlns=\\'http://example.org\\'>a</div>'}}",
     {"value@Patient.text.div"}},
    {"narrative, rich but valid",
     NULL,
     "{" PAT ",'text':{'status':'generated','div':'<div xmlns=\\'http://www.w3.org/1999/xhtml\\'>"
     "<table class=\\'x\\'><tr><td style=\\'color:red\\'>a &amp; &#160;b</td></tr></table>"
     "<img src=\\'#a\\' alt=\\'\\'/><a href=\\'http://example.org\\'>l</a><br/></div>'}}",
     {NULL}},
    {"_element null", NULL, "{" PAT ",'_birthDate':null}", {"structure@Patient.birthDate"}},
    {"narrative without div",
     NULL,
     "{" PAT ",'text':{'status':'generated'}}",
     {"required@Patient.text.div"}},
    {"reference to wrong type",
     NULL,
     "{" PAT ",'generalPractitioner':[{'reference':'Observation/1'}]}",
     {"invalid@Patient.generalPractitioner[0].reference"}},
};

/* ' -> " */
static char *dq(const char *s)
{
    char *r = strdup(s);
    assert_non_null(r);
    for (char *p = r; *p; p++)
        if (*p == '\'')
            *p = '"';
    return r;
}

static const char *sev_prefix(ehr_fhir_severity s)
{
    return s == EHR_SEV_WARNING ? "W:" : s == EHR_SEV_INFORMATION ? "I:" : "";
}

static void print_issues(const ehr_fhir_issues *l)
{
    for (size_t i = 0; i < l->n; i++)
        print_message("    got %s%s@%s: %s\n", sev_prefix(l->items[i].severity), l->items[i].code,
                      l->items[i].expression ? l->items[i].expression : "", l->items[i].message);
}

static bool run_case(const struct vcase *c)
{
    char *text = dq(c->json);
    ehr_err err;
    json_t *j = ehr_json_parse(text, strlen(text), &err);
    if (!j)
        fail_msg("%s: test input is not JSON: %s", c->name, err.msg);
    ehr_fhir_issues l = EHR_FHIR_ISSUES_INIT;
    ehr_fhir_validate_opts o;
    memset(&o, 0, sizeof o);
    o.type = c->type;
    ehr_status st = ehr_fhir_validate_ex(j, &o, &l);
    size_t want_errors = 0;
    bool ok = true;
    for (size_t k = 0; k < MAXEXP && c->expect[k]; k++) {
        const char *want = c->expect[k];
        bool warn = strncmp(want, "W:", 2) == 0;
        if (!warn)
            want_errors++;
        bool found = false;
        for (size_t i = 0; i < l.n && !found; i++) {
            char got[600];
            snprintf(got, sizeof got, "%s%s@%s", sev_prefix(l.items[i].severity), l.items[i].code,
                     l.items[i].expression ? l.items[i].expression : "");
            found = strcmp(got, want) == 0;
        }
        if (!found) {
            print_message("%s: expected %s\n", c->name, want);
            ok = false;
        }
    }
    size_t errors = ehr_fhir_issues_errors(&l);
    if (errors != want_errors) {
        print_message("%s: expected %zu errors, got %zu\n", c->name, want_errors, errors);
        ok = false;
    }
    if (st != (want_errors ? EHR_EINVAL : EHR_OK)) {
        print_message("%s: status %d\n", c->name, (int)st);
        ok = false;
    }
    /* every message says something */
    for (size_t i = 0; i < l.n; i++)
        assert_true(strlen(l.items[i].message) > 10);
    if (!ok)
        print_issues(&l);
    ehr_fhir_issues_free(&l);
    json_decref(j);
    free(text);
    return ok;
}

static void test_table(void **state)
{
    size_t failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* count failures so that one run shows them all */
        if (!run_case(&cases[i]))
            failed++;
    }
    assert_int_equal(failed, 0);
}

/* Messages say what is wrong and what to do. */
static void test_messages(void **state)
{
    static const struct {
        const char *json, *pattern;
    } m[] = {
        {"{" PAT ",'birthDate':'2023-02-29'}", "not a leap year"},
        {"{" PAT ",'birthdate':'2000'}", "did you mean 'birthDate'"},
        {"{" PAT ",'gender':'M'}", "female, male, other, unknown"},
        {"{" OBS ",'valueFoo':1}", "valueQuantity"},
        {"{" PAT ",'name':{'family':'a'}}", "wrap it in [ ]"},
        {"{" PAT ",'birthDate':['2000']}", "remove the [ ]"},
        {"{" PAT ",'active':'true'}", "without quotes"},
        {"{'resourceType':'Observation'}", "missing required element 'status'"},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        char *text = dq(m[i].json);
        json_t *j = ehr_json_parse(text, strlen(text), NULL);
        assert_non_null(j);
        ehr_fhir_issues l = EHR_FHIR_ISSUES_INIT;
        assert_int_equal(ehr_fhir_validate(j, &l), EHR_EINVAL);
        bool found = false;
        for (size_t k = 0; k < l.n; k++)
            found |= strstr(l.items[k].message, m[i].pattern) != NULL;
        if (!found)
            fail_msg("no message has '%s' (first: %s)", m[i].pattern,
                     l.n ? l.items[0].message : "none");
        ehr_fhir_issues_free(&l);
        json_decref(j);
        free(text);
    }
}

/* All issues are collected, up to the list's max. */
static void test_collects_all_bounded(void **state)
{
    ehr_buf b = EHR_BUF_INIT;
    ehr_buf_puts(&b, "{\"resourceType\":\"Patient\"");
    for (int i = 0; i < 300; i++)
        ehr_buf_printf(&b, ",\"x%d\":1", i);
    ehr_buf_puts(&b, "}");
    json_t *j = ehr_json_parse(b.data, b.len, NULL);
    assert_non_null(j);
    ehr_fhir_issues l = EHR_FHIR_ISSUES_INIT;
    assert_int_equal(ehr_fhir_validate(j, &l), EHR_EINVAL);
    assert_int_equal(l.n, 100); /* the default max */
    ehr_fhir_issues_free(&l);
    l.max = 7;
    assert_int_equal(ehr_fhir_validate(j, &l), EHR_EINVAL);
    assert_int_equal(l.n, 7);
    ehr_fhir_issues_free(&l);
    json_decref(j);
    ehr_buf_free(&b);
}

/* Deep nesting is an error, not a stack overflow. */
static void test_depth(void **state)
{
    ehr_buf b = EHR_BUF_INIT;
    ehr_buf_puts(&b, "{\"resourceType\":\"Patient\",\"extension\":[");
    for (int i = 0; i < 100; i++)
        ehr_buf_puts(&b, "{\"url\":\"u\",\"extension\":[");
    ehr_buf_puts(&b, "{\"url\":\"u\",\"valueString\":\"x\"}");
    for (int i = 0; i < 100; i++)
        ehr_buf_puts(&b, "]}");
    ehr_buf_puts(&b, "]}");
    json_t *j = ehr_json_parse(b.data, b.len, NULL);
    assert_non_null(j);
    ehr_fhir_issues l = EHR_FHIR_ISSUES_INIT;
    assert_int_equal(ehr_fhir_validate(j, &l), EHR_EINVAL);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].code, "too-costly");
    ehr_fhir_issues_free(&l);
    json_decref(j);
    ehr_buf_free(&b);
}

static void test_primitive_check(void **state)
{
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_DATE, "2024-02-29", 10));
    assert_non_null(ehr_fhir_primitive_check(EHR_PRIM_DATE, "2100-02-29", 10));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_DATE, "2000-02-29", 10));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_DATETIME, "2024-12-31T23:59:59.999999Z", 27));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_DATETIME, "2024-12", 7));
    assert_non_null(ehr_fhir_primitive_check(EHR_PRIM_DATETIME, "2024-12T10:00:00Z", 17));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_DATETIME, "2024-12-01T10:00:00+14:00", 25));
    assert_non_null(ehr_fhir_primitive_check(EHR_PRIM_DATETIME, "2024-12-01T10:00:00+14:30", 25));
    assert_non_null(ehr_fhir_primitive_check(EHR_PRIM_DATETIME, "2024-12-01T10:00:00.Z", 21));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_INTEGER, "-2147483648", 11));
    assert_non_null(ehr_fhir_primitive_check(EHR_PRIM_INTEGER, "-2147483649", 11));
    assert_non_null(ehr_fhir_primitive_check(EHR_PRIM_INTEGER, "99999999999999999999", 20));
    assert_non_null(ehr_fhir_primitive_check(EHR_PRIM_UNSIGNEDINT, "-0", 2));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_ID, "a-B.9", 5));
    assert_non_null(ehr_fhir_primitive_check(EHR_PRIM_ID, "", 0));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_CODE, "a b", 3));
    assert_non_null(ehr_fhir_primitive_check(EHR_PRIM_CODE, "a  b", 4));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_STRING, " ", 1));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_BOOLEAN, "true", 4));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_XHTML, "<div/>", 6));
    assert_null(ehr_fhir_primitive_check(EHR_PRIM_CANONICAL, "http://a/b|1.0", 14));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_collects_all_bounded),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_primitive_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
