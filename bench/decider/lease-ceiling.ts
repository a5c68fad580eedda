/**
 * The best case of a local lease tier on the bench's Zipf workload (issue 16): `npx tsx bench/decider/lease-ceiling.ts`.
 * A lease lets a process admit one subject's requests locally against units taken from Redis beforehand; it pays only
 * for a subject with at least `minRequests` requests per lease window. For Zipf s = 1.1 over 1,000,000 tenants (the
 * bench's distribution, `workloads.ts`) at a decision rate, this prints how many tenants are that hot and what share
 * of all decisions they take: the most a lease tier could take off Redis.
 */
const TENANTS = 1_000_000;
const S = 1.1;

const weights = new Float64Array(TENANTS);
let total = 0;
for (let rank = 0; rank < TENANTS; rank += 1) {
  weights[rank] = 1 / Math.pow(rank + 1, S);
  total += weights[rank] as number;
}

for (const ratePerS of [26_000, 13_000]) {
  for (const windowS of [0.1, 1]) {
    for (const minRequests of [4, 16]) {
      let share = 0;
      let hot = 0;
      for (let rank = 0; rank < TENANTS; rank += 1) {
        const p = (weights[rank] as number) / total;
        if (ratePerS * windowS * p < minRequests) break; // weights fall with rank: no hotter tenant after this one
        share += p;
        hot += 1;
      }
      console.log(
        `${ratePerS}/s, lease window ${windowS} s, a lease pays from ${minRequests} requests: ${hot} hot tenants, ${(share * 100).toFixed(1)} % of decisions`,
      );
    }
  }
}
