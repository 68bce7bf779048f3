package redisstore

import "github.com/redis/go-redis/v9"

// Every operation of the request path is a script, so that a Redis user without script
// permission fails all of them alike (Check says so at start-up) rather than some working and
// health flipping with each request.

// boundedRead is the prelude of the scripts that read a credential: bounded(k, max) returns
// {0, ”, 0} when k is absent, {2, size, 0} when k holds something no replica wrote (another
// type, more than max bytes, or no expiry), else {1, value, pttl}, the value's remaining life on
// Redis's clock. No value larger than max is ever sent to a replica.
const boundedRead = `
local function bounded(k, max)
  local t = redis.call('TYPE', k).ok
  if t == 'none' then return {0, '', 0} end
  if t ~= 'string' then return {2, -1, 0} end
  local n = redis.call('STRLEN', k)
  local ttl = redis.call('PTTL', k)
  if n > max or ttl < 0 then return {2, n, 0} end
  return {1, redis.call('GET', k), ttl}
end
`

// foreignSafe is the prelude of the scripts on limiter values and leases. number(k) is k's
// number, 0 when k is absent or holds what no replica wrote (another type, a long or non-numeric
// string), which is deleted: a foreign value resets one limit, as deleting it would, but never
// fails the script. holds(k, token) reports whether lease k holds token.
const foreignSafe = `
local function number(k)
  local t = redis.call('TYPE', k).ok
  if t == 'none' then return 0 end
  if t ~= 'string' or redis.call('STRLEN', k) > 32 then
    redis.call('DEL', k)
    return 0
  end
  local n = tonumber(redis.call('GET', k))
  if n == nil then redis.call('DEL', k) return 0 end
  return n
end
local function holds(k, token)
  return redis.call('TYPE', k).ok == 'string' and redis.call('STRLEN', k) <= 64 and redis.call('GET', k) == token
end
`

// readScript reads credential KEYS[1], at most ARGV[1] bytes.
var readScript = redis.NewScript(boundedRead + `
return bounded(KEYS[1], tonumber(ARGV[1]))
`)

// setScript stores credential ARGV[1] under KEYS[1] for ARGV[2] ms.
var setScript = redis.NewScript(`
return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
`)

// dropScript deletes credential KEYS[1], returning it as readScript does (ARGV[1] bytes at
// most), and publishes notice ARGV[3] on channel ARGV[2].
var dropScript = redis.NewScript(boundedRead + `
local r = bounded(KEYS[1], tonumber(ARGV[1]))
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return r
`)

// leaseScript takes mint lease KEYS[1] for this replica (token ARGV[1], ARGV[2] ms) if it is
// free, and returns {took, holder} followed by credential KEYS[2] as readScript returns it (ARGV[3]
// bytes at most). A lease of another type or without expiry, which no replica writes, is foreign
// and replaced.
var leaseScript = redis.NewScript(boundedRead + `
local lt = redis.call('TYPE', KEYS[1]).ok
if lt ~= 'none' and (lt ~= 'string' or redis.call('PTTL', KEYS[1]) == -1) then redis.call('DEL', KEYS[1]) end
local took = 0
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then took = 1 end
local holder = ''
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('STRLEN', KEYS[1]) <= 64 then
  holder = redis.call('GET', KEYS[1])
end
local r = bounded(KEYS[2], tonumber(ARGV[3]))
return {took, holder, r[1], r[2], r[3]}
`)

// checkScript runs, on its own key KEYS[1] and the drop channel ARGV[1], each command the other
// scripts run, so that a missing permission shows at start-up (see Store.Check).
var checkScript = redis.NewScript(`
redis.call('TIME')
redis.call('SET', KEYS[1], '1', 'NX', 'PX', 10000)
redis.call('TYPE', KEYS[1])
redis.call('STRLEN', KEYS[1])
redis.call('PTTL', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 10000)
redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], 'check')
return 1
`)

// The limiter is GCRA (the generic cell rate algorithm), the token bucket kept as one number per
// key: the theoretical arrival time (TAT) of the next request, in microseconds. A key lives only
// until its bucket would be full again, so Redis forgets idle callers by itself and forgetting
// never resets a limit. Time is Redis's own clock, so the replicas' clocks need not agree and
// requests that reach Redis out of order are not refused for it.
//
// takeScript takes up to ARGV[3] tokens of bucket KEYS[1] (ARGV[1] µs between tokens, ARGV[2]
// the burst), at least one. It returns {wait, taken}: taken tokens and wait 0, or no token and
// the µs until one is.
var takeScript = redis.NewScript(foreignSafe + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = number(KEYS[1])
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
var refundScript = redis.NewScript(foreignSafe + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = number(KEYS[1]) - tonumber(ARGV[1]) * tonumber(ARGV[2])
if tat <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
return 0
`)

// releaseScript deletes a mint lease only if this replica still holds it (ARGV[1], its token):
// a lease that expired and was taken by another replica is not ours to drop.
var releaseScript = redis.NewScript(foreignSafe + `
if holds(KEYS[1], ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// renewScript extends a mint lease by ARGV[2] ms if this replica (ARGV[1]) still holds it.
var renewScript = redis.NewScript(foreignSafe + `
if holds(KEYS[1], ARGV[1]) then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// failScript turns this replica's lease (ARGV[1]) into the "failed" mark for ARGV[2] ms.
var failScript = redis.NewScript(foreignSafe + `
if holds(KEYS[1], ARGV[1]) then
  return redis.call('SET', KEYS[1], 'failed', 'PX', ARGV[2])
end
return 0
`)
