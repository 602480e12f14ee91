package merkle

import "fmt"

// RootFromInclusionProof computes the root implied by an inclusion proof of
// the leaf hash at index in a tree of size, by the algorithm of RFC 9162
// section 2.1.3.2.
func RootFromInclusionProof(index, size uint64, leaf Hash, proof []Hash) (Hash, error) {
	if index >= size {
		return Hash{}, fmt.Errorf("leaf %d not in tree size %d: %w", index, size, ErrVerify)
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return Hash{}, fmt.Errorf("proof too long (%d hashes): %w", len(proof), ErrVerify)
		}
		if fn&1 == 1 || fn == sn {
			r = HashChildren(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = HashChildren(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return Hash{}, fmt.Errorf("proof too short (%d hashes): %w", len(proof), ErrVerify)
	}
	return r, nil
}

// VerifyInclusion checks that leaf is at index in the tree of size with the
// given root.
func VerifyInclusion(index, size uint64, leaf Hash, proof []Hash, root Hash) error {
	got, err := RootFromInclusionProof(index, size, leaf, proof)
	if err != nil {
		return err
	}
	if got != root {
		return fmt.Errorf("inclusion of leaf %d in size %d: computed root %s, want %s: %w", index, size, got, root, ErrVerify)
	}
	return nil
}

// VerifyConsistency checks that the tree of size second with root2 extends
// the tree of size first with root1, by the algorithm of RFC 9162 section
// 2.1.4.2. A first size of 0 is consistent with anything (empty proof).
func VerifyConsistency(first, second uint64, proof []Hash, root1, root2 Hash) error {
	switch {
	case first > second:
		return fmt.Errorf("consistency %d..%d: sizes decrease: %w", first, second, ErrVerify)
	case first == second:
		if len(proof) != 0 {
			return fmt.Errorf("consistency %d..%d: non-empty proof for equal sizes: %w", first, second, ErrVerify)
		}
		if root1 != root2 {
			return fmt.Errorf("consistency %d..%d: roots differ for equal sizes: %w", first, second, ErrVerify)
		}
		return nil
	case first == 0:
		if len(proof) != 0 {
			return fmt.Errorf("consistency from empty tree: non-empty proof: %w", ErrVerify)
		}
		return nil
	case len(proof) == 0:
		return fmt.Errorf("consistency %d..%d: empty proof: %w", first, second, ErrVerify)
	}
	path := proof
	if first&(first-1) == 0 {
		path = make([]Hash, 0, len(proof)+1)
		path = append(path, root1)
		path = append(path, proof...)
	}
	fn, sn := first-1, second-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := path[0], path[0]
	for _, c := range path[1:] {
		if sn == 0 {
			return fmt.Errorf("consistency %d..%d: proof too long: %w", first, second, ErrVerify)
		}
		if fn&1 == 1 || fn == sn {
			fr = HashChildren(c, fr)
			sr = HashChildren(c, sr)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = HashChildren(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("consistency %d..%d: proof too short: %w", first, second, ErrVerify)
	}
	if fr != root1 {
		return fmt.Errorf("consistency %d..%d: computed first root %s, want %s: %w", first, second, fr, root1, ErrVerify)
	}
	if sr != root2 {
		return fmt.Errorf("consistency %d..%d: computed second root %s, want %s: %w", first, second, sr, root2, ErrVerify)
	}
	return nil
}
