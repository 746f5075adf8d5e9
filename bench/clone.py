#!/usr/bin/env python3
"""
clone.py - the scale ladder's data: N Synthea patients made by cloning the
patient Bundles of ../shared/data/synthea/r4-2019 under new ids.

usage: clone.py N OUTDIR

Clone k of a Bundle gets new ids (a UUID derived from the old id and k) for
every resource except Organization and Practitioner, which stay shared as
in a real region; every occurrence of an old id in the Bundle (resource
ids, urn:uuid full URLs and references) is replaced, so each clone is a
self-consistent transaction. Writes OUTDIR/clone-K-NAME.json.
"""
import glob
import json
import os
import sys
import uuid

SHARED = ('Organization', 'Practitioner')


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.join(here, '..', '..', 'shared', 'data', 'synthea', 'r4-2019')
    if not os.path.isdir(src):
        src = os.path.join(here, '..', '..', '..', 'shared', 'data', 'synthea', 'r4-2019')
    bundles = []
    for f in sorted(glob.glob(os.path.join(src, '*.json'))):
        j = json.load(open(f, encoding='utf-8'))
        if not isinstance(j, dict) or j.get('resourceType') != 'Bundle':
            continue
        if not any(e['resource']['resourceType'] == 'Patient' for e in j['entry']):
            continue
        text = open(f, encoding='utf-8').read()
        ids = [e['resource']['id'] for e in j['entry']
               if e['resource']['resourceType'] not in SHARED and e['resource'].get('id')]
        bundles.append((os.path.basename(f), text, ids))
    os.makedirs(out, exist_ok=True)
    total = 0
    for k in range(n):
        name, text, ids = bundles[k % len(bundles)]
        gen = k // len(bundles)
        if gen:
            for i in ids:
                text = text.replace(i, str(uuid.uuid5(uuid.NAMESPACE_URL, '%s/%d' % (i, gen))))
        with open(os.path.join(out, 'clone-%05d-%s' % (k, name)), 'w', encoding='utf-8') as f:
            f.write(text)
        total += text.count('"request"')
    print('clone.py: %d patient Bundles, %d entries, in %s' % (n, total, out))


if __name__ == '__main__':
    main()
