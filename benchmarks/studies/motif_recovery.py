"""The motifs chain on the demo against the simulator's truth: discovery and annotation of the
planted motifs, scan precision/recall against motif_sites.tsv, and the spacing experiment
against the simulator's cooperative rule.

    bash scripts/demo.sh
    .venv/bin/python -m bpnet_tfx.motifs pipeline --saved_model=demo_output/model/export \
        --records_dir=demo_output/records --output_dir=demo_output/interpretation \
        --motif_db=demo_output/demo_motifs.meme    # (meme.demo_database(), written by this
                                                   # script when missing)
    .venv/bin/python -m benchmarks.studies.motif_recovery \
        [--pipeline_dir=demo_output/interpretation]

Reads the pipeline folder (its contrib, discover and scan folders), the planted sites and the
rule from the simulation beside the records' FASTA, runs `motifs space` for the rule's two
motifs (consensus sequences) over --num_backgrounds backgrounds, and prints a readable row per
measurement and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os


def _simulation(records_dir: str) -> tuple[str, dict]:
    """(motif_sites.tsv, simulation.json's config) of the demo the records came from."""
    from bpnet_tfx.records import schema

    fasta = schema.RecordsInfo.load(records_dir).source['fasta']
    root = os.path.dirname(fasta)
    with open(os.path.join(root, 'simulation.json')) as f:
        return os.path.join(root, 'motif_sites.tsv'), json.load(f)['config']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pipeline_dir', default='demo_output/interpretation')
    parser.add_argument('--saved_model', default='demo_output/model/export')
    parser.add_argument('--records_dir', default='demo_output/records')
    parser.add_argument('--num_backgrounds', type=int, default=64)
    parser.add_argument('--max_distance', type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

    from bpnet_tfx.motifs import experiments, formats, instances, recovery

    sites_path, config = _simulation(args.records_dir)
    discover_dir = os.path.join(args.pipeline_dir, 'discover')
    summary, found = formats.load_discovery(discover_dir)
    contrib = formats.load_contrib(summary['contrib_dir'])
    matches = formats.load_matches(discover_dir)
    out = {'patterns': {}, 'recovery': {}, 'spacing': {}}
    for p in found:
        best = matches.get(p.name, [{}])[0]
        out['patterns'][p.name] = {
            'seqlets': len(p.seqlets),
            'consensus': p.trimmed().consensus(),
            'best_match': best.get('match_alt'),
            'q_value': best.get('q_value'),
        }
        print(
            f'{p.name}: {len(p.seqlets)} seqlets, {p.trimmed().consensus()}, best match '
            f'{best.get("match_alt")} (q {best.get("q_value")})'
        )
    hits = instances.load_instances(os.path.join(args.pipeline_dir, 'scan'))
    result = recovery.recovery(hits, recovery.read_sites(sites_path), contrib['windows'])
    recovery.write_table(os.path.join(args.pipeline_dir, 'recovery.tsv'), result)
    for target, r in result.items():
        out['recovery'][target] = {k: r[k] for k in ('precision', 'recall', 'instances', 'sites')}
        out['recovery'][target]['motifs'] = r['motifs']
        print(
            f'scan {target}: precision {r["precision"]:.3f}, recall {r["recall"]:.3f} '
            f'({r["instances"]} instances, {r["sites"]} planted sites in the windows)'
        )
    names = config.get('cooperative_motifs') or []
    if len(names) == 2:
        consensus = {m['name']: m['consensus'] for t in config['tasks'] for m in t['motifs']}
        space = experiments.run_space(
            args.saved_model,
            summary['contrib_dir'],
            (names[0], consensus[names[0]]),
            (names[1], consensus[names[1]]),
            os.path.join(args.pipeline_dir, 'space'),
            max_distance=args.max_distance,
            num_backgrounds=args.num_backgrounds,
            overwrite=True,
        )
        for task, r in space['interaction'].items():
            out['spacing'][task] = {
                **r,
                'planted_range': config['cooperative_distance'],
                'planted_boost': config['cooperative_boost'],
            }
            print(
                f'space {task}: {"+" if r["sign"] > 0 else "-"} at {r["range"]} bp (peak '
                f'ratio {r["peak_ratio"]:.2f} at {r["peak_distance"]}, baseline '
                f'{r["baseline_ratio"]:.2f}); planted: x{config["cooperative_boost"]} at '
                f'{config["cooperative_distance"]} bp'
            )
    print(json.dumps(out, sort_keys=True))


if __name__ == '__main__':
    main()
