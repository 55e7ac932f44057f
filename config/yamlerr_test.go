package config

import "testing"

// yamlSyntaxErrors are YAML syntax errors, each reported on the line that
// holds the problem or opens the construct left unfinished.
var yamlSyntaxErrors = []struct{ name, yaml, want string }{
	{"unclosed flow mapping",
		"listeners:\n  - addr: 127.0.0.1:0\nroutes:\n  - name: a\n    respond: {status: 200\n",
		`bad.yaml:5: did not find expected ',' or '}'`},
	{"unclosed flow sequence",
		"log:\n  access: \"off\"\n  level: [info\n",
		`bad.yaml:3: did not find expected ',' or ']'`},
	{"key indented less than its siblings",
		"log:\n  access: \"off\"\n level: info\n",
		`bad.yaml:3: did not find expected key`},
	{"list item inside a mapping", // the library names the mapping's first line
		"log:\n  access: \"off\"\n  level: info\n  - x\n",
		`bad.yaml:2: did not find expected key`},
	// Scanner errors, which the library already counts from 1.
	{"unterminated quoted string",
		"log:\n  access: \"off\n",
		`bad.yaml:2: found unexpected end of stream`},
	{"tab indentation",
		"log:\n\taccess: \"off\"\n",
		`bad.yaml:2: found character that cannot start any token`},
}

func TestYAMLSyntaxErrorsNameTheirLine(t *testing.T) {
	expectParseErrors(t, yamlSyntaxErrors)
}
