package config

import "slices"

// yamlParserProblems are the messages of the YAML library's parser errors,
// as opposed to its scanner errors. go.yaml.in/yaml/v3 (parser.fail)
// reports the line of a parser error counted from 0 and that of a scanner
// error counted from 1, so a parser error would be shown one line early.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// yamlErrorLine returns the 1-based line of a YAML syntax error that the
// library reported as line, with message problem.
func yamlErrorLine(line int, problem string) int {
	if slices.Contains(yamlParserProblems, problem) {
		return line + 1
	}
	return line
}
