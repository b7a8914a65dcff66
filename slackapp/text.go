package slackapp

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Slack's limits on the texts reins writes (Block Kit reference). Limits are
// in characters; reins counts bytes, which is never fewer.
const (
	maxHeader       = 150
	maxSection      = 3000
	maxField        = 2000
	maxContext      = 2000
	maxButtonText   = 75
	maxConfirmTitle = 100
	maxConfirmText  = 300
	maxConfirmBtn   = 30
	maxFallback     = 3000
	maxFields       = 10
	maxBlocks       = 50
)

// clean makes outside text safe to show: valid UTF-8, no control characters
// but newlines and tabs, no bidirectional overrides (which can make text
// read differently than it is).
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n', r == '\t':
			return r
		case unicode.IsControl(r), r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F:
			return -1
		}
		return r
	}, s)
}

// escape makes s literal in mrkdwn: Slack decodes &amp; &lt; &gt; only, and
// without them "<!channel>", "<!subteam^…>" or "<https://…|label>" in an
// agent's text would notify people or disguise a link.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// cut shortens s to at most max bytes on a character boundary, ending with
// "…" when anything was cut. It never splits an entity escape wrote.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	n := max - len(ellipsis)
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	s = s[:n]
	if amp := strings.LastIndexByte(s, '&'); amp >= 0 && amp >= len(s)-len("&amp;") && !strings.Contains(s[amp:], ";") {
		s = s[:amp]
	}
	return s + ellipsis
}

// mrkdwn is outside text cleaned, escaped and cut to max bytes.
func mrkdwn(s string, max int) string { return cut(escape(clean(s)), max) }

// plain is outside text for a plain_text object, cleaned and cut (plain
// text is not parsed for mentions or links).
func plain(s string, max int) string { return cut(clean(s), max) }

// quote makes already-escaped text a block quote.
func quote(s string) string {
	if s == "" {
		return ""
	}
	return "> " + strings.ReplaceAll(s, "\n", "\n> ")
}

// oneLine folds newlines and tabs into spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
