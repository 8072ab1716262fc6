#!/usr/bin/env bash
# The whole pipeline on the embedded demo data: simulate -> Beam records -> train under
# MirroredStrategy -> SavedModel -> evaluation -> a prediction plot. Outputs in demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
PY=.venv/bin/python
OUT=demo_output
start=$(date +%s)

echo "== 1/4 records (Apache Beam, DirectRunner)"
$PY -m beam_jobs.make_records --runner=DirectRunner --output_dir=$OUT/records --overwrite

echo "== 2/4 training (configs/demo.flags)"
# --overwrite replaces an earlier demo's model: a rerun trains afresh on the records just remade.
$PY -m bpnet_tfx.train --flagfile=configs/demo.flags --overwrite

echo "== 3/4 evaluation on the validation chromosome (chr1)"
$PY -m bpnet_tfx.evaluate --saved_model=$OUT/model/export --records_dir=$OUT/records \
  --split=valid --output_json=$OUT/evaluation_valid.json

echo "== 4/4 prediction plot for the strongest chr1 peak kept in the records"
REGION=$($PY - "$OUT/records" <<'PYEOF'
import csv, json, sys
source = json.load(open(f'{sys.argv[1]}/metadata.json'))['source']
with open(f'{sys.argv[1]}/rejected.tsv') as f:  # e.g. outlier peaks: not in the records
    rejected = {int(row['line']) for row in csv.DictReader(f, delimiter='\t')}
best = None
with open(source['peaks']) as f:
    for number, line in enumerate(f, 1):
        cols = line.split('\t')
        if (cols[0] == 'chr1' and number not in rejected
                and (best is None or float(cols[4]) > best[1])):
            best = (int(cols[1]), float(cols[4]))
print(f'chr1:{best[0] - 500}-{best[0] + 500}')
PYEOF
)
$PY -m bpnet_tfx.predict --saved_model=$OUT/model/export --region="$REGION" \
  --output_png=$OUT/prediction.png

echo "demo: done in $(( $(date +%s) - start )) s: records $OUT/records, model $OUT/model/export,"
echo "      metrics $OUT/evaluation_valid.json, plot $OUT/prediction.png"
