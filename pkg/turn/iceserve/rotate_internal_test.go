package iceserve

import (
	"reflect"
	"testing"
)

// The Rotator's Stats sums every counter of its handlers: a counter added to Stats and not to
// addStats would read zero after a key switch.
func TestAddStatsSumsEveryCounter(t *testing.T) {
	var one Stats
	v := reflect.ValueOf(&one).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Int64 {
			f.SetInt(1)
		}
	}
	one.Refused, one.UpstreamErrors = map[string]int64{"x": 1}, map[string]int64{"y": 1}
	sum := emptyStats()
	addStats(&sum, one)
	addStats(&sum, one)
	s := reflect.ValueOf(sum)
	for i := range s.NumField() {
		if f := s.Field(i); f.Kind() == reflect.Int64 && f.Int() != 2 {
			t.Errorf("Stats.%s sums to %d over two handlers, want 2", s.Type().Field(i).Name, f.Int())
		}
	}
	if sum.Refused["x"] != 2 || sum.UpstreamErrors["y"] != 2 {
		t.Errorf("maps: %v %v", sum.Refused, sum.UpstreamErrors)
	}
}
