-- One gate scan, checked and applied atomically (see docs/entry.md).
-- KEYS[1] nonce result      entry:nonce:<gate_id>:<nonce>      string
-- KEYS[2] credential state  entry:cred:<credential_id>         hash in, out, rev, seeded
-- KEYS[3] venue today       entry:occ:<venue_id>:<day>         hash inside, admitted, fresh
-- ARGV[1] static reason ("ok" or the refusal decided from the record)
-- ARGV[2] direction in|out   ARGV[3] policy single|multi   ARGV[4] party size
-- ARGV[5] instantaneous cap  ARGV[6] daily cap (0 = none)
-- ARGV[7] nonce ttl s        ARGV[8] state ttl s
-- ARGV[9] "1" to seed missing state from ARGV[10..15]: in, out, rev, inside, admitted,
--         fresh ("1": the database had nothing for this venue-day)
-- Returns {"replay", answer} | {"miss"} | {"new", answer, inside_before, inside_after}
-- answer = "decision|reason|person_no|delta_inside|delta_admitted"
local prior = redis.call('GET', KEYS[1])
if prior then return {'replay', prior} end
local nonce_ttl = tonumber(ARGV[7])
if ARGV[1] ~= 'ok' then
  local answer = 'deny|' .. ARGV[1] .. '|0|0|0'
  redis.call('SET', KEYS[1], answer, 'EX', nonce_ttl)
  return {'new', answer, '0', '0'}
end
if ARGV[9] == '1' then
  if redis.call('HEXISTS', KEYS[2], 'seeded') == 0 then
    redis.call('HSET', KEYS[2], 'in', ARGV[10], 'out', ARGV[11], 'seeded', '1')
    if ARGV[12] ~= '' then redis.call('HSETNX', KEYS[2], 'rev', ARGV[12]) end
  end
  if redis.call('HEXISTS', KEYS[3], 'inside') == 0 then
    redis.call('HSET', KEYS[3], 'inside', ARGV[13], 'admitted', ARGV[14], 'fresh', ARGV[15])
  end
end
if redis.call('HEXISTS', KEYS[3], 'inside') == 0 then return {'miss'} end
if redis.call('HEXISTS', KEYS[2], 'seeded') == 0 then
  -- 'fresh': this venue-day's state was built when the database held no scan
  -- and no revocation for it, so a credential without state was never scanned
  -- (a revocation arriving since is already in the hash as 'rev')
  if redis.call('HGET', KEYS[3], 'fresh') ~= '1' then return {'miss'} end
  redis.call('HSET', KEYS[2], 'in', 0, 'out', 0, 'seeded', '1')
end
local state_ttl = tonumber(ARGV[8])
redis.call('EXPIRE', KEYS[2], state_ttl)
redis.call('EXPIRE', KEYS[3], state_ttl)
local cred = redis.call('HMGET', KEYS[2], 'in', 'out', 'rev')
local n_in, n_out, rev = tonumber(cred[1]), tonumber(cred[2]), cred[3]
local occ = redis.call('HMGET', KEYS[3], 'inside', 'admitted')
local inside, admitted = tonumber(occ[1]), tonumber(occ[2])

local function finish(answer, after)
  redis.call('SET', KEYS[1], answer, 'EX', nonce_ttl)
  return {'new', answer, tostring(inside), tostring(after)}
end

if ARGV[2] == 'out' then
  -- an exit always opens; it counts only if this ticket is inside
  if n_in - n_out > 0 then
    redis.call('HINCRBY', KEYS[2], 'out', 1)
    local after = inside - 1
    if after < 0 then after = 0 end
    redis.call('HSET', KEYS[3], 'inside', after)
    return finish('admit|ok|0|-1|0', after)
  end
  return finish('admit|ok|0|0|0', inside)
end

if rev then return finish('deny|' .. rev .. '|0|0|0', inside) end
local party = tonumber(ARGV[4])
if ARGV[3] == 'multi' then
  if n_in - n_out >= party then return finish('deny|not_exited|0|0|0', inside) end
elseif n_in >= party then
  return finish('deny|already_used|0|0|0', inside)
end
local first = 0
if n_in < party then first = 1 end
local cap, daily = tonumber(ARGV[5]), tonumber(ARGV[6])
if cap > 0 and inside + 1 > cap then return finish('deny|capacity_full|0|0|0', inside) end
if first == 1 and daily > 0 and admitted + 1 > daily then
  return finish('deny|capacity_full|0|0|0', inside)
end
redis.call('HINCRBY', KEYS[2], 'in', 1)
redis.call('HINCRBY', KEYS[3], 'inside', 1)
if first == 1 then redis.call('HINCRBY', KEYS[3], 'admitted', 1) end
local person = 0
if ARGV[3] ~= 'multi' then person = n_in + 1 end
return finish('admit|ok|' .. person .. '|1|' .. first, inside + 1)
