package fleet

// rng is xoshiro256** seeded through splitmix64. It is written out here,
// not taken from math/rand, so that the value stream (and so every event
// the simulator emits) never changes with the Go release.
type rng struct{ s [4]uint64 }

// splitmix64 is the finaliser used to seed and to hash tuples.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// mix hashes a tuple of integers into one well-spread 64-bit value.
func mix(parts ...uint64) uint64 {
	h := uint64(0x6a09e667f3bcc909)
	for _, p := range parts {
		h = splitmix64(h ^ p)
	}
	return h
}

// newRNG returns a generator seeded from the tuple parts.
func newRNG(parts ...uint64) *rng {
	r := &rng{}
	r.seed(mix(parts...))
	return r
}

func (r *rng) seed(x uint64) {
	for i := range r.s {
		x = splitmix64(x)
		r.s[i] = x
	}
	if r.s == [4]uint64{} {
		r.s[0] = 1
	}
}

func rotl(x uint64, k uint) uint64 { return x<<k | x>>(64-k) }

// Uint64 returns the next 64 random bits.
func (r *rng) Uint64() uint64 {
	s := &r.s
	out := rotl(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = rotl(s[3], 45)
	return out
}

// Float64 returns a uniform value in [0, 1).
func (r *rng) Float64() float64 { return float64(r.Uint64()>>11) / (1 << 53) }

// Range returns a uniform value in [lo, hi).
func (r *rng) Range(lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

// IntN returns a uniform int in [0, n); n must be > 0.
func (r *rng) IntN(n int) int { return int(r.Uint64() % uint64(n)) }

// Bool returns true with probability p.
func (r *rng) Bool(p float64) bool { return r.Float64() < p }

// Norm returns an approximately standard normal value: the Irwin-Hall sum
// of four uniforms, scaled to unit variance. Its tails stop at ±3.46, fine
// for sensor noise, and it costs no logarithm or cosine.
func (r *rng) Norm() float64 {
	const k = 1.0 / (1 << 53)
	u := float64(r.Uint64()>>11) + float64(r.Uint64()>>11) + float64(r.Uint64()>>11) + float64(r.Uint64()>>11)
	return (u*k - 2) * 1.7320508075688772
}
