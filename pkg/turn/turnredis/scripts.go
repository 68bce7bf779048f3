package turnredis

import "github.com/redis/go-redis/v9"

// The limiter is GCRA (the generic cell rate algorithm), the token bucket kept as one number per
// key: the theoretical arrival time (TAT) of the next request, in microseconds. A key lives only
// until its bucket would be full again, so Redis forgets idle callers by itself and forgetting
// never resets a limit. Time is Redis's own clock, so the replicas' clocks need not agree and
// requests that reach Redis out of order are not refused for it.
//
// takeScript takes up to ARGV[3] tokens of bucket KEYS[1] (ARGV[1] µs between tokens, ARGV[2]
// the burst), at least one. It returns {wait, taken}: taken tokens and wait 0, or no token and
// the µs until one is.
var takeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local free = math.floor((now + interval * burst - tat) / interval)
if free < 1 then
  return {math.ceil(tat + interval - interval * burst - now), 0}
end
local n = math.min(want, free)
tat = tat + interval * n
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
return {0, n}
`)

// refundScript gives ARGV[2] tokens back to bucket KEYS[1] (ARGV[1] µs between tokens): the TAT
// moves back, and the key goes when the bucket is full.
var refundScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') - tonumber(ARGV[1]) * tonumber(ARGV[2])
if tat <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
return 0
`)

// releaseScript deletes a mint lease only if this replica still holds it (ARGV[1], its token):
// a lease that expired and was taken by another replica is not ours to drop.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// renewScript extends a mint lease by ARGV[2] ms if this replica (ARGV[1]) still holds it.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// failScript turns this replica's lease (ARGV[1]) into the "failed" mark for ARGV[2] ms.
var failScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], 'failed', 'PX', ARGV[2])
end
return 0
`)
