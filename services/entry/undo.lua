-- Take back what scan.lua applied (database conflict or failure, or annul).
-- KEYS as scan.lua. ARGV[1] direction in|out, ARGV[2] delta_inside,
-- ARGV[3] delta_admitted, ARGV[4] new nonce answer ("" deletes, "=" keeps),
-- ARGV[5] floor for the credential's entries (the database's count, "" none).
-- Returns {inside_before, inside_after} (-1 when the venue state is gone).
if redis.call('HEXISTS', KEYS[2], 'seeded') == 1 then
  if ARGV[1] == 'in' and tonumber(ARGV[2]) > 0 then
    local n = redis.call('HINCRBY', KEYS[2], 'in', -1)
    local floor = tonumber(ARGV[5]) or 0
    if n < floor then redis.call('HSET', KEYS[2], 'in', floor) end
  elseif tonumber(ARGV[2]) < 0 then
    redis.call('HINCRBY', KEYS[2], 'out', -1)
  end
end
local before, after = -1, -1
if redis.call('HEXISTS', KEYS[3], 'inside') == 1 then
  local occ = redis.call('HMGET', KEYS[3], 'inside', 'admitted')
  before = tonumber(occ[1])
  after = before - tonumber(ARGV[2])
  if after < 0 then after = 0 end
  local admitted = tonumber(occ[2]) - tonumber(ARGV[3])
  if admitted < 0 then admitted = 0 end
  redis.call('HSET', KEYS[3], 'inside', after, 'admitted', admitted)
end
if ARGV[4] == '' then
  redis.call('DEL', KEYS[1])
elseif ARGV[4] ~= '=' then
  redis.call('SET', KEYS[1], ARGV[4], 'KEEPTTL')
end
return {tostring(before), tostring(after)}
