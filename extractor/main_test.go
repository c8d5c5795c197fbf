package main

import (
	"testing"

	"github.com/parking-newtaipei/parking-newtaipei/internal/clitest"
)

// Help is success: `extractor fetch -h` prints the usage and exits 0.
func TestEveryCommandsHelpIsSuccess(t *testing.T) { clitest.Help(t, program()) }

func TestEveryCommandRefusesAnUnknownFlag(t *testing.T) { clitest.UnknownFlag(t, program()) }
