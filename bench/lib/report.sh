# shellcheck shell=bash disable=SC2034
# bench/lib/report.sh: turns $OUT/raw.tsv into the side-by-side table, the wtmesh ratios with their goals,
# and the raw numbers. Sourced, not executed.
#
# Aggregation: req/s, p50 and p99 are medians over the rounds; bulk is the best of the runs; CPU per request
# is (sum of CPU ticks over all rounds) / (sum of requests); CPU per MiB is the CPU over all bulk runs
# divided by the MiB they moved; the fixed-rate columns come from the single fixed-rate run.

# summarize: prints "target key value" lines (aggregated) to stdout.
summarize() {
  awk -F'\t' -v hz="$CLK_TCK" '
    { k = $1 SUBSEP $2; n[k]++; v[k, n[k]] = $3; sum[k] += $3
      if (!(k in max) || $3 + 0 > max[k]) max[k] = $3 + 0; t[$1] = 1 }
    function med(k,    i, j, tmp, m, a) {
      m = n[k]; if (!m) return ""
      for (i = 1; i <= m; i++) a[i] = v[k, i] + 0
      for (i = 2; i <= m; i++) { tmp = a[i]; for (j = i - 1; j >= 1 && a[j] > tmp; j--) a[j + 1] = a[j]; a[j + 1] = tmp }
      return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    END {
      for (x in t) {
        K = x SUBSEP
        if (n[K "rps"]) {
          printf "%s rps %.0f\n", x, med(K "rps")
          printf "%s rps_min %.0f\n", x, minv(K "rps")
          printf "%s rps_max %.0f\n", x, max[K "rps"]
          printf "%s p50_ms %.3f\n", x, med(K "p50_ms")
          printf "%s p99_ms %.3f\n", x, med(K "p99_ms")
          printf "%s errors %d\n", x, sum[K "errors"]
          if (n[K "foreign_pct"]) printf "%s foreign_pct %.0f\n", x, med(K "foreign_pct")
          if (sum[K "requests"] > 0) {
            printf "%s cpu_us_req %.1f\n", x, sum[K "req_ticks"] * 1e6 / hz / sum[K "requests"]
            printf "%s origin_us_req %.1f\n", x, sum[K "req_origin_ticks"] * 1e6 / hz / sum[K "requests"]
          }
        }
        if (n[K "bulk_mibs"]) printf "%s bulk_mibs %.0f\n", x, max[K "bulk_mibs"]
        if (sum[K "bulk_bytes"] > 0)
          printf "%s cpu_ms_mib %.2f\n", x, sum[K "bulk_ticks"] * 1e3 / hz / (sum[K "bulk_bytes"] / 1048576)
        if (n[K "bulk_fail"]) printf "%s bulk_fail %d\n", x, sum[K "bulk_fail"]
        if (n[K "fixed_rate"]) {
          printf "%s fixed_rate %.0f\n", x, med(K "fixed_rate")
          printf "%s fixed_cpu_pct %.1f\n", x, sum[K "fixed_ticks"] * 100 / hz / (sum[K "fixed_wall_ms"] / 1000)
          if (sum[K "fixed_done"] > 0)
            printf "%s fixed_us_req %.1f\n", x, sum[K "fixed_ticks"] * 1e6 / hz / sum[K "fixed_done"]
          printf "%s fixed_p99_ms %.2f\n", x, med(K "fixed_p99_ms")
          printf "%s fixed_failed %d\n", x, sum[K "fixed_done"] - sum[K "fixed_ok"]
        }
        if (n[K "agent_rss_kb"]) printf "%s agent_rss_mib %.1f\n", x, max[K "agent_rss_kb"] / 1024
        if (n[K "agent_rss_anon_kb"]) printf "%s agent_anon_mib %.1f\n", x, max[K "agent_rss_anon_kb"] / 1024
        if (n[K "agent_rss_file_kb"]) printf "%s agent_file_mib %.1f\n", x, max[K "agent_rss_file_kb"] / 1024
        if (n[K "agent_pss_kb"]) printf "%s agent_pss_mib %.1f\n", x, max[K "agent_pss_kb"] / 1024
      }
    }
    function minv(k,    i, m) { m = v[k, 1] + 0; for (i = 2; i <= n[k]; i++) if (v[k, i] + 0 < m) m = v[k, i] + 0; return m }
  ' "$OUT/raw.tsv" > "$OUT/summary.txt"
}

# get TARGET KEY: one aggregated value (empty if absent).
get() { awk -v t="$1" -v k="$2" '$1 == t && $2 == k { print $3 }' "$OUT/summary.txt"; }


# verdict VALUE OP GOAL: "met" / "NOT met" / "n/a".
verdict() {
  awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN {
    if (v == "n/a" || v == "") { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= g + 0) : (v + 0 <= g + 0); print ok ? "met" : "NOT met" }'
}

print_report() {
  summarize
  local t
  echo
  echo "== wtmesh HTTP tunnel vs baselines ($(date -u +%Y-%m-%dT%H:%MZ), $MODE run: $ROUNDS round(s) of wrk -t2 -c64 -d${WRK_SECS}s, $BULK_RUNS x 100 MiB, fixed ${FIXED_RATE} req/s for ${FIXED_SECS}s) =="
  local fmt='%-11s %-5s %8s %7s %7s %5s %5s | %9s | %11s %11s %12s | %7s %8s %8s %8s\n'
  # shellcheck disable=SC2059
  printf "$fmt" target proto 'req/s' 'p50ms' 'p99ms' 'err' 'oth%' 'bulkMiB/s' 'proxyus/req' 'proxyms/MiB' 'originus/req' \
    'fix r/s' 'fix CPU%' 'fix us/r' 'fix RSS'
  for t in "${TARGETS[@]}"; do
    local d=-
    # shellcheck disable=SC2059
    printf "$fmt" "$t" "${T_PROTO[$t]}" \
      "$(get "$t" rps)" "$(get "$t" p50_ms)" "$(get "$t" p99_ms)" "$(get "$t" errors)" "$(get "$t" foreign_pct)" \
      "$(get "$t" bulk_mibs)$( [[ -n "$(get "$t" bulk_fail)" ]] && echo '!')" \
      "$( [[ -n "${T_ROOTS[$t]}" ]] && get "$t" cpu_us_req || echo "$d")" \
      "$( [[ -n "${T_ROOTS[$t]}" ]] && get "$t" cpu_ms_mib || echo "$d")" \
      "$(get "$t" origin_us_req)" \
      "$(get "$t" fixed_rate)" "$( [[ -n "${T_ROOTS[$t]}" ]] && get "$t" fixed_cpu_pct || echo "$d")" \
      "$( [[ -n "${T_ROOTS[$t]}" ]] && get "$t" fixed_us_req || echo "$d")" \
      "$( [[ -n "${T_AGENT[$t]}" ]] && echo "$(get "$t" agent_rss_mib)M" || echo "$d")"
  done
  echo
  echo "Targets (the proxy processes whose CPU is counted):"
  for t in "${TARGETS[@]}"; do printf '  %-11s %s\n' "$t" "${T_NOTE[$t]}"; done

  if [[ " ${TARGETS[*]} " == *" wtmesh "* ]]; then
    local r_ssh r_ng r_ngtls b_ssh b_ng c_ssh c_ng cm_ssh rss
    r_ssh=$(ratio "$(get wtmesh rps)" "$(get ssh rps)")
    r_ng=$(ratio "$(get wtmesh rps)" "$(get nginx rps)")
    r_ngtls=$(ratio "$(get wtmesh rps)" "$(get nginx_tls rps)")
    b_ssh=$(ratio "$(get wtmesh bulk_mibs)" "$(get ssh bulk_mibs)")
    b_ng=$(ratio "$(get wtmesh bulk_mibs)" "$(get nginx bulk_mibs)")
    c_ssh=$(ratio "$(get wtmesh cpu_us_req)" "$(get ssh cpu_us_req)")
    c_ng=$(ratio "$(get wtmesh cpu_us_req)" "$(get nginx_tls cpu_us_req)")
    cm_ssh=$(ratio "$(get wtmesh cpu_ms_mib)" "$(get ssh cpu_ms_mib)")
    rss=$(get wtmesh agent_rss_mib)
    local h_ssh h_ng hb_ssh
    h_ssh=$(ratio "$(get wtmesh_http rps)" "$(get ssh rps)")
    h_ng=$(ratio "$(get wtmesh_http rps)" "$(get nginx rps)")
    hb_ssh=$(ratio "$(get wtmesh_http bulk_mibs)" "$(get ssh bulk_mibs)")
    echo
    echo "wtmesh ratios                                   value   goal    verdict (issue 15's goals: printed, not asserted)"
    printf '  request rate vs ssh -R                        %5s   >= 4    %s\n' "$r_ssh" "$(verdict "$r_ssh" '>=' 4)"
    printf '  request rate vs nginx one-hop (plain HTTP)    %5s   >= 0.7  %s (issue 3)\n' "$r_ng" "$(verdict "$r_ng" '>=' 0.7)"
    printf '  request rate vs nginx one-hop (TLS)           %5s   >= 0.85 %s\n' "$r_ngtls" "$(verdict "$r_ngtls" '>=' 0.85)"
    printf '  bulk MiB/s vs ssh -R                          %5s   >= 1    %s\n' "$b_ssh" "$(verdict "$b_ssh" '>=' 1)"
    printf '  bulk MiB/s vs nginx one-hop                   %5s   -\n' "$b_ng"
    printf '  agent RSS at ~%s req/s (MiB)                %5s   <= 8    %s\n' \
      "$FIXED_RATE" "${rss:-n/a}" "$(verdict "${rss:-n/a}" '<=' 8)"
    printf '    of which heap/anon %s MiB, mapped binary+libraries %s MiB; PSS %s MiB; ssh -R client RSS %s MiB\n' \
      "$(get wtmesh agent_anon_mib)" "$(get wtmesh agent_file_mib)" "$(get wtmesh agent_pss_mib)" "$(get ssh agent_rss_mib)"
    printf '  proxy CPU per request vs ssh -R               %5s   -\n' "$c_ssh"
    printf '  proxy CPU per request vs nginx TLS one-hop    %5s   <= 1.3  %s\n' "$c_ng" "$(verdict "$c_ng" '<=' 1.3)"
    printf '  proxy CPU per MiB vs ssh -R                   %5s   <= 1    %s\n' "$cm_ssh" "$(verdict "$cm_ssh" '<=' 1)"
    if [[ " ${TARGETS[*]} " == *" wtmesh_http "* ]]; then
      echo "  plain-HTTP public side (wtmesh_http), without public TLS (issue 3's goals):"
      printf '    request rate vs ssh -R                      %5s   >= 3    %s\n' "$h_ssh" "$(verdict "$h_ssh" '>=' 3)"
      printf '    request rate vs nginx one-hop (plain HTTP)  %5s   >= 0.7  %s\n' "$h_ng" "$(verdict "$h_ng" '>=' 0.7)"
      printf '    bulk MiB/s vs ssh -R                        %5s   >= 1    %s\n' "$hb_ssh" "$(verdict "$hb_ssh" '>=' 1)"
    fi
    [[ -n "${WTMESH_THREADS:-}" ]] && { echo; echo "wtmesh CPU by thread over the whole run (ticks of 1/${CLK_TCK} s):"; echo "$WTMESH_THREADS"; }
  else
    echo
    echo "wtmesh was not measured (${WTMESH_SKIP_REASON:-skipped}); ratios need it."
  fi
  print_versions  # bench/lib/versions.sh
  echo
  echo "Raw numbers ($OUT/raw.tsv: target, key, value; ticks are 1/${CLK_TCK} s):"
  awk -F'\t' '{ a[$1 "\t" $2] = a[$1 "\t" $2] (a[$1 "\t" $2] == "" ? "" : " ") $3; if (!($1 "\t" $2 in o)) { o[$1 "\t" $2] = ++n; ord[n] = $1 "\t" $2 } }
       END { for (i = 1; i <= n; i++) { split(ord[i], kk, "\t"); printf "  %-10s %-18s %s\n", kk[1], kk[2], a[ord[i]] } }' "$OUT/raw.tsv"
}
