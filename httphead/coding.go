package httphead

// Content codings Outpost produces, in the order it prefers them when a
// client weighs them equally: brotli compresses text best, zstd is next
// and gzip is understood everywhere.
var codings = [...]string{"br", "zstd", "gzip"}

// PreferredCoding returns the content coding to send a client whose
// request has header h: the one of br, zstd and gzip with the highest
// weight in Accept-Encoding (RFC 9110 section 12.5.3; "*" stands for those
// not named, "x-gzip" for gzip), ties going to the order above, or ""
// (identity) when none is acceptable. Identity itself never outranks a
// coding the client accepts: a compressed body is what both want. It
// allocates nothing.
func PreferredCoding(h *Header) string {
	var q [len(codings)]int // weight of each coding in thousandths; -1 unnamed
	for i := range q {
		q[i] = -1
	}
	star := -1
	h.Values("Accept-Encoding", func(v []byte) bool {
		for len(v) > 0 {
			var item []byte
			item, v = nextListItem(v)
			coding, weight := codingWeight(item)
			switch {
			case len(coding) == 0:
			case string(coding) == "*":
				star = weight
			case EqualFold(coding, "x-gzip"):
				q[2] = max(q[2], weight)
			default:
				for i, name := range codings {
					if EqualFold(coding, name) {
						q[i] = max(q[i], weight)
					}
				}
			}
		}
		return true
	})
	best, bestQ := "", 0
	for i, name := range codings {
		w := q[i]
		if w < 0 {
			w = star // not named: what "*" says, or refused without it
		}
		if w > bestQ {
			best, bestQ = name, w
		}
	}
	return best
}

// nextListItem splits the first element off a comma-separated list.
func nextListItem(list []byte) (item, rest []byte) {
	for i, c := range list {
		if c == ',' {
			return TrimOWS(list[:i]), list[i+1:]
		}
	}
	return TrimOWS(list), nil
}

// codingWeight splits "gzip;q=0.5" into the coding and its weight in
// thousandths (1000 without a weight; 0 for a weight that cannot be read,
// which refuses the coding rather than guess).
func codingWeight(item []byte) ([]byte, int) {
	coding, params := item, []byte(nil)
	for i, c := range item {
		if c == ';' {
			coding, params = item[:i], item[i+1:]
			break
		}
	}
	coding = TrimOWS(coding)
	params = TrimOWS(params)
	if len(params) == 0 {
		return coding, 1000
	}
	if len(params) < 3 || params[0]|0x20 != 'q' || params[1] != '=' {
		return coding, 1000 // another parameter: no weight given
	}
	return coding, parseWeight(TrimOWS(params[2:]))
}

// parseWeight reads a qvalue, "0" to "1.000" (RFC 9110 section 12.4.2),
// in thousandths; anything else is 0.
func parseWeight(b []byte) int {
	if len(b) == 0 || (b[0] != '0' && b[0] != '1') {
		return 0
	}
	w := int(b[0]-'0') * 1000
	if len(b) == 1 {
		return w
	}
	if b[1] != '.' || len(b) > 5 {
		return 0
	}
	scale := 100
	for _, c := range b[2:] {
		if c < '0' || c > '9' {
			return 0
		}
		w += int(c-'0') * scale
		scale /= 10
	}
	return min(w, 1000)
}
