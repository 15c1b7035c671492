package main

import (
	"errors"
	"io"
)

func check(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return exit(exitUsage, errors.New("check is not built yet"))
}

func test(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return exit(exitUsage, errors.New("test is not built yet"))
}

func explain(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return exit(exitUsage, errors.New("explain is not built yet"))
}
