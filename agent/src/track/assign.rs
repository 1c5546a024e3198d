//! Minimum-cost assignment (Hungarian algorithm, O(n²m)) for matching tracks to detections.

/// Pairs (row, col) minimizing total cost; pairs whose cost is `>= max_cost` are not returned.
pub fn assign(cost: &[Vec<f32>], max_cost: f32) -> Vec<(usize, usize)> {
    let rows = cost.len();
    let cols = cost.first().map_or(0, Vec::len);
    // Most matching passes pair nothing (the riding and cross-class passes, on most frames).
    if rows == 0 || cols == 0 || cost.iter().flatten().all(|&c| c >= max_cost) {
        return Vec::new();
    }
    // The algorithm needs rows <= cols; solve the transpose otherwise.
    let transposed = rows > cols;
    let (n, m) = if transposed { (cols, rows) } else { (rows, cols) };
    let at = |i: usize, j: usize| -> f64 {
        let c = if transposed { cost[j][i] } else { cost[i][j] };
        c.min(max_cost) as f64
    };
    // 1-based potentials u (rows), v (cols); p[j] = row matched to column j.
    let (mut u, mut v) = (vec![0f64; n + 1], vec![0f64; m + 1]);
    let (mut p, mut way) = (vec![0usize; m + 1], vec![0usize; m + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let cur = at(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    (1..=m)
        .filter(|&j| p[j] != 0)
        .map(|j| if transposed { (j - 1, p[j] - 1) } else { (p[j] - 1, j - 1) })
        .filter(|&(r, c)| cost[r][c] < max_cost)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_global_minimum_not_the_greedy_one() {
        // Greedy would take (0,0)=1 and then (1,1)=10; the optimum is (0,1)+(1,0) = 2 + 2.
        let cost = vec![vec![1.0, 2.0], vec![2.0, 10.0]];
        let mut pairs = assign(&cost, 100.0);
        pairs.sort();
        assert_eq!(pairs, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn drops_pairs_over_the_gate_and_handles_more_rows_than_columns() {
        let cost = vec![vec![0.5], vec![0.2], vec![0.9]];
        assert_eq!(assign(&cost, 1.0), vec![(1, 0)]);
        assert!(assign(&[vec![5.0]], 1.0).is_empty());
    }
}
