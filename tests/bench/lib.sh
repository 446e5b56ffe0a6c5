# What every benchmark under tests/bench shares; sourced, not run.
#
#   bench_machine              before the first round: cores, load, and
#                              whether another process holds a core (then
#                              every ratio says so beside it)
#   keep NAME SECONDS [RSS]    records one round's time (and peak RSS, KiB)
#   best NAME, median NAME     the fastest and the median of its rounds
#   rss NAME                   the peak RSS of its fastest round
#   figures NAME               "best X s, median Y s (rounds: a b c)"
#   ratio BASE OTHER           best(BASE) / best(OTHER), two decimals (> 1:
#                              OTHER is faster), with the busy warning
#                              when there is one
#
# A ratio compares runs of the same script on the same machine in the same
# hour; bench_machine is what makes a noisy neighbour visible.

declare -A bench_rounds
bench_busy=""

# The processes that used more than half a core over one second, as
# "name (NN% of a core)"; this shell and its children excluded.
bench_busy_processes() {
  local hz before after
  hz=$(getconf CLK_TCK)
  snapshot() {
    for f in /proc/[0-9]*/stat; do
      # Fields after the command name (which may hold spaces): utime, stime
      # are the 12th and 13th after the closing parenthesis.
      { read -r line < "$f"; } 2>/dev/null || continue
      local pid=${line%% *} rest=${line##*) }
      local comm=${line#* (}; comm=${comm%) *}
      set -- $rest
      echo "$pid ${12} ${13} $comm"
    done
  }
  before=$(snapshot)
  sleep 1
  after=$(snapshot)
  awk -v hz="$hz" -v me="$$" -v pp="$BASHPID" '
    NR == FNR { t[$1] = $2 + $3; next }
    ($1 in t) && $1 != me && $1 != pp {
      used = ($2 + $3 - t[$1]) / hz
      if (used > 0.5) { $2 = $3 = ""; sub(/^[0-9]+ +/, ""); printf "%s (%d%% of a core)\n", $0, used * 100 }
    }' <(echo "$before") <(echo "$after")
}

bench_machine() {
  local busy
  busy=$(bench_busy_processes | paste -sd ';' | sed 's/;/; /g')
  echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)${busy:+; busy: $busy}" >&2
  bench_busy=$busy
}

keep() {
  bench_rounds[$1]="${bench_rounds[$1]:-} $2:${3:-0}"
}

# Every round's seconds, one a line.
bench_times() {
  local r
  for r in ${bench_rounds[$1]}; do echo "${r%%:*}"; done
}

best() { bench_times "$1" | sort -g | head -n 1; }

median() {
  bench_times "$1" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

rss() {
  local b r
  b=$(best "$1")
  for r in ${bench_rounds[$1]}; do
    [ "${r%%:*}" = "$b" ] && { echo "${r##*:}"; return; }
  done
}

figures() {
  echo "best $(best "$1") s, median $(median "$1") s (rounds:$(bench_times "$1" | paste -sd ' ' | sed 's/^/ /'))"
}

ratio() {
  local r
  r=$(awk -v a="$(best "$1")" -v b="$(best "$2")" 'BEGIN { printf "%.2f", a / b }')
  echo "$r${bench_busy:+ [not comparable: busy when the run started: $bench_busy]}"
}
