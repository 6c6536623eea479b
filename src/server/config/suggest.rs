//! "Did you mean …?": the known name closest to a misspelt one.

/// The candidate closest to `name` by edit distance (insertions, deletions, substitutions and
/// swaps of neighbours), if it is close enough to be a typo: at most a third of the name's
/// length, at least 1 and at most 3 edits. The first of equally close candidates wins.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let allowed = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|candidate| (distance(name, candidate), candidate))
        .filter(|&(distance, _)| distance <= allowed)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// The optimal-string-alignment distance between `a` and `b`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: the distance between a[..i] and b[..j]; three rows are enough.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_edits_and_swaps() {
        assert_eq!(distance("port", "port"), 0);
        assert_eq!(distance("prot", "port"), 1);
        assert_eq!(distance("maxclent", "maxclients"), 2);
        assert_eq!(distance("", "dir"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn only_close_names_are_suggested() {
        let names = ["port", "maxclients", "appendfsync", "dir"];
        assert_eq!(closest("prot", names), Some("port"));
        assert_eq!(closest("maxclent", names), Some("maxclients"));
        assert_eq!(closest("appendfsnyc", names), Some("appendfsync"));
        assert_eq!(closest("dri", names), Some("dir"));
        assert_eq!(closest("listen", names), None);
        assert_eq!(closest("x", names), None);
    }
}
