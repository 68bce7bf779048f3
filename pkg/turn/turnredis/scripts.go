package turnredis

import "github.com/redis/go-redis/v9"

// The limiter is GCRA (the generic cell rate algorithm), the token bucket kept as one number per
// key: the theoretical arrival time (TAT) of the next request, in microseconds. A key lives only
// until its bucket would be full again, so Redis forgets idle callers by itself and forgetting
// never resets a limit. Time is Redis's own clock, so the replicas' clocks need not agree and
// requests that reach Redis out of order are not refused for it.
//
// KEYS[1] the bucket; ARGV[1] the interval between tokens (µs), ARGV[2] the burst.
// Returns 0 when a token was taken, else the wait in µs until one is.
var allowScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - interval * burst
if allow_at > now then
  return math.ceil(allow_at - now)
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return 0
`)

// refundScript gives one token back: the TAT moves back by one interval, and the key goes when
// the bucket is full. Same arguments as allowScript.
var refundScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local next_tat = tat - interval
if next_tat <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
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
