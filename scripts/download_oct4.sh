#!/usr/bin/env bash
# Downloads the reference experiment's inputs (needs the internet; nothing in the pipeline or
# the tests ever downloads):
#   - Oct4 ChIP-nexus in mouse ES cells, GEO sample GSM4072776 (Avsec et al. 2021): the peaks
#     and the per-strand (pos/neg) bigWigs from the sample's supplementary files;
#   - GENCODE mouse release M23, GRCm38 primary assembly FASTA (UCSC-style 'chr1' names, as
#     the GEO bigWigs use).
# Then it prints the make_records and train commands of the reference experiment.
#
# Usage: bash scripts/download_oct4.sh [DEST]   (default DEST: data/oct4)
# GEO supplementary file names are matched by pattern; if GEO renames them, set OCT4_PEAKS_URL,
# OCT4_POS_URL and OCT4_NEG_URL to the files' full URLs.
set -euo pipefail
DEST=${1:-data/oct4}
GEO_DIR=https://ftp.ncbi.nlm.nih.gov/geo/samples/GSM4072nnn/GSM4072776/suppl
GENOME_URL=https://ftp.ebi.ac.uk/pub/databases/gencode/Gencode_mouse/release_M23/GRCm38.primary_assembly.genome.fa.gz
mkdir -p "$DEST"

fetch() {  # fetch URL FILE: resumable download with a clear failure message
  echo "download_oct4: $1 -> $2"
  if ! curl -fL --retry 3 -C - -o "$2.part" "$1"; then
    echo "download_oct4: error: could not download $1" >&2
    exit 1
  fi
  mv "$2.part" "$2"
}

pick() {  # pick REGEX: the one file in the GEO listing whose name matches
  local matches
  matches=$(grep -oE 'href="[^"]+"' "$DEST/geo_listing.html" | sed 's/href="//; s/"$//' \
    | grep -E "$1" | sort -u || true)
  if [ "$(printf '%s\n' "$matches" | grep -c .)" != 1 ]; then
    echo "download_oct4: error: expected one GEO file matching /$1/ in $GEO_DIR, found:" \
      "${matches:-none}; set the OCT4_*_URL variables" >&2
    exit 1
  fi
  echo "$GEO_DIR/$matches"
}

if [ -z "${OCT4_PEAKS_URL:-}" ] || [ -z "${OCT4_POS_URL:-}" ] || [ -z "${OCT4_NEG_URL:-}" ]; then
  fetch "$GEO_DIR/" "$DEST/geo_listing.html"
fi
PEAKS_URL=${OCT4_PEAKS_URL:-$(pick '(peak|Peak)[^/]*\.(bed|narrowPeak)(\.gz)?$')}
POS_URL=${OCT4_POS_URL:-$(pick '(pos|plus|\+)[^/]*\.(bw|bigWig|bigwig)$')}
NEG_URL=${OCT4_NEG_URL:-$(pick '(neg|minus|-)[^/]*\.(bw|bigWig|bigwig)$')}

[ -s "$DEST/peaks.bed.gz" ] || [ -s "$DEST/peaks.bed" ] || {
  case "$PEAKS_URL" in
    *.gz) fetch "$PEAKS_URL" "$DEST/peaks.bed.gz" ;;
    *) fetch "$PEAKS_URL" "$DEST/peaks.bed" ;;
  esac
}
[ -s "$DEST/oct4.pos.bw" ] || fetch "$POS_URL" "$DEST/oct4.pos.bw"
[ -s "$DEST/oct4.neg.bw" ] || fetch "$NEG_URL" "$DEST/oct4.neg.bw"
if [ ! -s "$DEST/GRCm38.primary_assembly.genome.fa" ]; then
  fetch "$GENOME_URL" "$DEST/GRCm38.primary_assembly.genome.fa.gz"
  echo "download_oct4: decompressing the genome (pyfaidx needs plain or bgzip FASTA)"
  gunzip -f "$DEST/GRCm38.primary_assembly.genome.fa.gz"
fi
PEAKS=$(ls "$DEST"/peaks.bed.gz "$DEST"/peaks.bed 2>/dev/null | head -1)

cat <<MSG
download_oct4: done. The reference experiment (chr1 held out, 1000-bp windows on the summits):
  .venv/bin/python -m beam_jobs.make_records --runner=DirectRunner \\
      --fasta=$DEST/GRCm38.primary_assembly.genome.fa --peaks=$PEAKS \\
      --pos_bigwig=$DEST/oct4.pos.bw --neg_bigwig=$DEST/oct4.neg.bw --task_name=Oct4 \\
      --valid_chroms=chr1 --sequence_length=1000 --output_dir=$DEST/records
  .venv/bin/python -m bpnet_tfx.train --flagfile=configs/oct4_seed.flags
  .venv/bin/python -m bpnet_tfx.predict --saved_model=models/oct4_seed/export \\
      --region=chr1:180924452-180925452 --output_png=models/oct4_seed/lefty1.png
MSG
