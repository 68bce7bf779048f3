package main

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Every string a server chose (key names and IDs, error messages, ICE URLs) passes through
// printable or terminalSafeJSON before it reaches a terminal, so a hostile or broken server cannot
// forge output lines, move the cursor, change colours, hide text or reorder it.

// unsafeRune reports whether r must not reach a terminal as it is: control characters (C0, DEL,
// C1, which includes the 8-bit CSI), format characters (zero-width, bidi overrides and isolates,
// the BOM, tag characters), line and paragraph separators, private-use and unassigned code points.
// The plain space is the only non-graphic character allowed.
func unsafeRune(r rune) bool {
	return r != ' ' && !unicode.IsGraphic(r)
}

// printable returns s with every unsafe character and every invalid UTF-8 byte escaped in Go
// notation (\n, \x1b, \u202e), so that what was hidden becomes visible.
func printable(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !unsafeRune(r):
			b.WriteString(s[i : i+size])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

// terminalSafeJSON rewrites JSON text so that no unsafe character appears raw: each becomes a \u
// escape, which any JSON parser reads back as the same character. encoding/json already escapes
// C0 controls, U+2028 and U+2029, but not DEL, C1 controls, zero-width or bidi characters. Outside
// strings, JSON holds only ASCII punctuation and white space, so every unsafe rune found is inside
// a string, where an escape is valid; the line breaks and indentation of the encoder stay.
func terminalSafeJSON(b []byte) []byte {
	unsafeInJSON := func(r rune) bool { return r != '\n' && unsafeRune(r) }
	if bytes.IndexFunc(b, unsafeInJSON) < 0 {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = fmt.Appendf(out, `\ufffd`) // encoding/json never emits invalid UTF-8; be safe anyway
		case !unsafeInJSON(r):
			out = append(out, b[i:i+size]...)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += size
	}
	return out
}
