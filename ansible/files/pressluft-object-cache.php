<?php
/**
 * Pressluft object-cache drop-in (pressluft-object-cache). Managed by Pressluft: placed as
 * wp-content/object-cache.php when the environment's redis_cache_enabled is on, removed when off;
 * changes are overwritten by the next converge.
 *
 * A persistent WordPress object cache on Redis through the phpredis extension (no downloads, no
 * plugin). Every key is WP_REDIS_PREFIX . group . ':' . key (on a multisite, blog-specific groups
 * carry the blog id: WP_REDIS_PREFIX . blog_id . ':' . group . ':' . key), so environments sharing
 * one Redis never see each other's keys. wp_cache_flush() deletes only the keys with this prefix
 * (SCAN + UNLINK), never FLUSHDB / FLUSHALL.
 *
 * Without WP_REDIS_PREFIX, with WP_REDIS_DISABLED true, without the redis extension or when Redis
 * is unreachable (also in the middle of a request), it keeps working as WordPress' in-process
 * cache: the site stays up, only without persistence. Non-persistent groups never reach Redis.
 *
 * Constants (wp-config.php): WP_REDIS_PREFIX, WP_REDIS_HOST (127.0.0.1), WP_REDIS_PORT (6379),
 * WP_REDIS_DATABASE (0), WP_REDIS_PASSWORD (optional), WP_REDIS_TIMEOUT (1 s),
 * WP_REDIS_READ_TIMEOUT (1 s), WP_REDIS_DISABLED.
 */

defined('ABSPATH') || exit;

if (!defined('PRESSLUFT_OBJECT_CACHE')) {
	define('PRESSLUFT_OBJECT_CACHE', '1');
}

function wp_cache_init()
{
	$GLOBALS['wp_object_cache'] = new WP_Object_Cache();
}

function wp_cache_add($key, $data, $group = '', $expire = 0)
{
	global $wp_object_cache;
	return $wp_object_cache->add($key, $data, $group, (int) $expire);
}

function wp_cache_add_multiple(array $data, $group = '', $expire = 0)
{
	global $wp_object_cache;
	return $wp_object_cache->add_multiple($data, $group, (int) $expire);
}

function wp_cache_replace($key, $data, $group = '', $expire = 0)
{
	global $wp_object_cache;
	return $wp_object_cache->replace($key, $data, $group, (int) $expire);
}

function wp_cache_set($key, $data, $group = '', $expire = 0)
{
	global $wp_object_cache;
	return $wp_object_cache->set($key, $data, $group, (int) $expire);
}

function wp_cache_set_multiple(array $data, $group = '', $expire = 0)
{
	global $wp_object_cache;
	return $wp_object_cache->set_multiple($data, $group, (int) $expire);
}

function wp_cache_get($key, $group = '', $force = false, &$found = null)
{
	global $wp_object_cache;
	return $wp_object_cache->get($key, $group, $force, $found);
}

function wp_cache_get_multiple($keys, $group = '', $force = false)
{
	global $wp_object_cache;
	return $wp_object_cache->get_multiple($keys, $group, $force);
}

function wp_cache_delete($key, $group = '')
{
	global $wp_object_cache;
	return $wp_object_cache->delete($key, $group);
}

function wp_cache_delete_multiple(array $keys, $group = '')
{
	global $wp_object_cache;
	return $wp_object_cache->delete_multiple($keys, $group);
}

function wp_cache_incr($key, $offset = 1, $group = '')
{
	global $wp_object_cache;
	return $wp_object_cache->incr($key, $offset, $group);
}

function wp_cache_decr($key, $offset = 1, $group = '')
{
	global $wp_object_cache;
	return $wp_object_cache->decr($key, $offset, $group);
}

function wp_cache_flush()
{
	global $wp_object_cache;
	return $wp_object_cache->flush();
}

function wp_cache_flush_runtime()
{
	global $wp_object_cache;
	return $wp_object_cache->flush_runtime();
}

function wp_cache_flush_group($group)
{
	global $wp_object_cache;
	return $wp_object_cache->flush_group($group);
}

function wp_cache_supports($feature)
{
	switch ($feature) {
		case 'add_multiple':
		case 'set_multiple':
		case 'get_multiple':
		case 'delete_multiple':
		case 'flush_runtime':
		case 'flush_group':
			return true;
		default:
			return false;
	}
}

function wp_cache_close()
{
	global $wp_object_cache;
	return $wp_object_cache instanceof WP_Object_Cache ? $wp_object_cache->close() : true;
}

function wp_cache_add_global_groups($groups)
{
	global $wp_object_cache;
	$wp_object_cache->add_global_groups($groups);
}

function wp_cache_add_non_persistent_groups($groups)
{
	global $wp_object_cache;
	$wp_object_cache->add_non_persistent_groups($groups);
}

function wp_cache_switch_to_blog($blog_id)
{
	global $wp_object_cache;
	$wp_object_cache->switch_to_blog($blog_id);
}

function wp_cache_reset()
{
	_deprecated_function(__FUNCTION__, '3.5.0', 'wp_cache_switch_to_blog()');
	global $wp_object_cache;
	$wp_object_cache->reset();
}

class WP_Object_Cache
{
	/** @var array<string, mixed> this request's copy: derived key => value */
	private $cache = array();
	/** @var array<string, true> */
	private $global_groups = array();
	/** @var array<string, true> */
	private $non_persistent_groups = array();
	/** @var Redis|null null = in-process only */
	private $redis = null;
	/** @var string */
	private $prefix = '';
	/** @var string */
	private $blog_prefix = '';
	/** @var bool */
	private $multisite = false;
	/** @var string|null why Redis is not used (diagnostics) */
	public $redis_error = null;

	public $cache_hits = 0;
	public $cache_misses = 0;
	public $redis_calls = 0;

	public function __construct()
	{
		$this->multisite = function_exists('is_multisite') && is_multisite();
		$this->blog_prefix = $this->multisite ? (int) get_current_blog_id() . ':' : '';
		$this->connect();
	}

	private function connect()
	{
		if (defined('WP_REDIS_DISABLED') && WP_REDIS_DISABLED) {
			$this->redis_error = 'WP_REDIS_DISABLED';
			return;
		}
		if (!defined('WP_REDIS_PREFIX') || !is_string(WP_REDIS_PREFIX) || WP_REDIS_PREFIX === '') {
			// Without its own prefix this environment could read and flush another's keys.
			$this->redis_error = 'WP_REDIS_PREFIX is not defined';
			return;
		}
		if (!class_exists('Redis')) {
			$this->redis_error = 'the phpredis extension is not loaded';
			return;
		}
		$this->prefix = WP_REDIS_PREFIX;
		$host = defined('WP_REDIS_HOST') ? WP_REDIS_HOST : '127.0.0.1';
		$port = defined('WP_REDIS_PORT') ? (int) WP_REDIS_PORT : 6379;
		$timeout = defined('WP_REDIS_TIMEOUT') ? (float) WP_REDIS_TIMEOUT : 1.0;
		$read_timeout = defined('WP_REDIS_READ_TIMEOUT') ? (float) WP_REDIS_READ_TIMEOUT : 1.0;
		try {
			$redis = new Redis();
			if (!@$redis->connect($host, $port, $timeout, null, 0, $read_timeout)) {
				$this->redis_error = 'cannot connect to Redis';
				return;
			}
			if (defined('WP_REDIS_PASSWORD') && WP_REDIS_PASSWORD !== '' && WP_REDIS_PASSWORD !== null) {
				if (!$redis->auth(WP_REDIS_PASSWORD)) {
					$this->redis_error = 'Redis refused the password';
					return;
				}
			}
			$db = defined('WP_REDIS_DATABASE') ? (int) WP_REDIS_DATABASE : 0;
			if ($db !== 0 && !$redis->select($db)) {
				$this->redis_error = 'cannot select the Redis database';
				return;
			}
			$redis->setOption(Redis::OPT_SERIALIZER, Redis::SERIALIZER_NONE);
			$this->redis = $redis;
		} catch (Exception $e) {
			$this->redis_error = 'Redis: ' . $e->getMessage();
			$this->redis = null;
		}
	}

	/** Redis failed during the request: continue in-process (the values written so far stay). */
	private function lost(Exception $e)
	{
		$this->redis_error = 'Redis: ' . $e->getMessage();
		$this->redis = null;
	}

	/** Whether Redis is in use right now (diagnostics, tests). */
	public function redis_connected()
	{
		return $this->redis !== null;
	}

	// ------------------------------------------------------------------ keys and values -------

	private function valid_key($key)
	{
		if (is_int($key)) {
			return true;
		}
		if (is_string($key) && trim($key) !== '') {
			return true;
		}
		$type = gettype($key);
		if (function_exists('_doing_it_wrong') && function_exists('__')) {
			_doing_it_wrong(__CLASS__ . '::' . debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS, 2)[1]['function'],
				sprintf('Cache key must be an integer or a non-empty, non-whitespace string; %s given.', $type), '6.1.0');
		}
		return false;
	}

	private function group($group)
	{
		return (is_string($group) && $group !== '') || is_int($group) ? (string) $group : 'default';
	}

	private function derive($key, $group)
	{
		$blog = ($this->multisite && !isset($this->global_groups[$group])) ? $this->blog_prefix : '';
		return $blog . $group . ':' . $key;
	}

	private function persistent($group)
	{
		return $this->redis !== null && !isset($this->non_persistent_groups[$group]);
	}

	/** Integers stay plain (so INCRBY works on them); everything else is PHP-serialized. */
	private static function encode($value)
	{
		if (is_int($value)) {
			return (string) $value;
		}
		return serialize($value);
	}

	private static function decode($raw)
	{
		if (!is_string($raw)) {
			return false;
		}
		if (preg_match('/^-?[0-9]+$/', $raw)) {
			return (int) $raw;
		}
		if ($raw === 'b:0;') {
			return false;
		}
		$value = @unserialize($raw);
		return $value;
	}

	private static function copy($value)
	{
		return is_object($value) ? clone $value : $value;
	}

	private function redis_set($derived, $value, $expire, $mode = null)
	{
		$this->redis_calls++;
		$options = array();
		if ($mode !== null) {
			$options[] = $mode;
		}
		if ($expire > 0) {
			$options['ex'] = (int) $expire;
		}
		$raw = self::encode($value);
		$full = $this->prefix . $derived;
		return $options === array() ? $this->redis->set($full, $raw) : $this->redis->set($full, $raw, $options);
	}

	// ------------------------------------------------------------------ API -------------------

	public function add($key, $data, $group = 'default', $expire = 0)
	{
		if (function_exists('wp_suspend_cache_addition') && wp_suspend_cache_addition()) {
			return false;
		}
		if (!$this->valid_key($key)) {
			return false;
		}
		$group = $this->group($group);
		$derived = $this->derive($key, $group);
		if (array_key_exists($derived, $this->cache)) {
			return false;
		}
		if ($this->persistent($group)) {
			try {
				if (!$this->redis_set($derived, $data, (int) $expire, 'nx')) {
					return false;
				}
			} catch (Exception $e) {
				$this->lost($e);
			}
		}
		$this->cache[$derived] = self::copy($data);
		return true;
	}

	public function add_multiple(array $data, $group = '', $expire = 0)
	{
		$values = array();
		foreach ($data as $key => $value) {
			$values[$key] = $this->add($key, $value, $group, $expire);
		}
		return $values;
	}

	public function replace($key, $data, $group = 'default', $expire = 0)
	{
		if (!$this->valid_key($key)) {
			return false;
		}
		$group = $this->group($group);
		$derived = $this->derive($key, $group);
		if ($this->persistent($group)) {
			try {
				if (!$this->redis_set($derived, $data, (int) $expire, 'xx')) {
					unset($this->cache[$derived]);
					return false;
				}
			} catch (Exception $e) {
				$this->lost($e);
				if (!array_key_exists($derived, $this->cache)) {
					return false;
				}
			}
		} elseif (!array_key_exists($derived, $this->cache)) {
			return false;
		}
		$this->cache[$derived] = self::copy($data);
		return true;
	}

	public function set($key, $data, $group = 'default', $expire = 0)
	{
		if (!$this->valid_key($key)) {
			return false;
		}
		$group = $this->group($group);
		$derived = $this->derive($key, $group);
		if ($this->persistent($group)) {
			try {
				$this->redis_set($derived, $data, (int) $expire);
			} catch (Exception $e) {
				$this->lost($e);
			}
		}
		$this->cache[$derived] = self::copy($data);
		return true;
	}

	public function set_multiple(array $data, $group = '', $expire = 0)
	{
		$values = array();
		foreach ($data as $key => $value) {
			$values[$key] = $this->set($key, $value, $group, $expire);
		}
		return $values;
	}

	public function get($key, $group = 'default', $force = false, &$found = null)
	{
		if (!$this->valid_key($key)) {
			$found = false;
			return false;
		}
		$group = $this->group($group);
		$derived = $this->derive($key, $group);
		if (array_key_exists($derived, $this->cache) && (!$force || !$this->persistent($group))) {
			$found = true;
			$this->cache_hits++;
			return self::copy($this->cache[$derived]);
		}
		if ($this->persistent($group)) {
			try {
				$this->redis_calls++;
				$raw = $this->redis->get($this->prefix . $derived);
			} catch (Exception $e) {
				$this->lost($e);
				$raw = false;
			}
			if ($raw !== false && $raw !== null) {
				$value = self::decode($raw);
				if ($value !== false || $raw === 'b:0;') {
					$this->cache[$derived] = $value;
					$found = true;
					$this->cache_hits++;
					return self::copy($value);
				}
			}
		}
		$found = false;
		$this->cache_misses++;
		return false;
	}

	public function get_multiple($keys, $group = 'default', $force = false)
	{
		$group = $this->group($group);
		$values = array();
		$fetch = array();
		foreach ($keys as $key) {
			if (!$this->valid_key($key)) {
				$values[$key] = false;
				continue;
			}
			$derived = $this->derive($key, $group);
			if (array_key_exists($derived, $this->cache) && (!$force || !$this->persistent($group))) {
				$this->cache_hits++;
				$values[$key] = self::copy($this->cache[$derived]);
				continue;
			}
			$values[$key] = false;
			if ($this->persistent($group)) {
				$fetch[$key] = $derived;
			} else {
				$this->cache_misses++;
			}
		}
		if ($fetch !== array() && $this->redis !== null) {
			try {
				$this->redis_calls++;
				$full = array();
				foreach ($fetch as $derived) {
					$full[] = $this->prefix . $derived;
				}
				$raws = $this->redis->mget($full);
			} catch (Exception $e) {
				$this->lost($e);
				$raws = array();
			}
			$i = 0;
			foreach ($fetch as $key => $derived) {
				$raw = is_array($raws) && array_key_exists($i, $raws) ? $raws[$i] : false;
				$i++;
				if ($raw === false || $raw === null) {
					$this->cache_misses++;
					continue;
				}
				$value = self::decode($raw);
				if ($value === false && $raw !== 'b:0;') {
					$this->cache_misses++;
					continue;
				}
				$this->cache[$derived] = $value;
				$this->cache_hits++;
				$values[$key] = self::copy($value);
			}
		}
		return $values;
	}

	public function delete($key, $group = 'default', $deprecated = false)
	{
		if (!$this->valid_key($key)) {
			return false;
		}
		$group = $this->group($group);
		$derived = $this->derive($key, $group);
		$existed = array_key_exists($derived, $this->cache);
		unset($this->cache[$derived]);
		if ($this->persistent($group)) {
			try {
				$this->redis_calls++;
				return $this->redis->del($this->prefix . $derived) > 0 || $existed;
			} catch (Exception $e) {
				$this->lost($e);
			}
		}
		return $existed;
	}

	public function delete_multiple(array $keys, $group = '')
	{
		$values = array();
		foreach ($keys as $key) {
			$values[$key] = $this->delete($key, $group);
		}
		return $values;
	}

	public function incr($key, $offset = 1, $group = 'default')
	{
		return $this->add_to($key, (int) $offset, $group);
	}

	public function decr($key, $offset = 1, $group = 'default')
	{
		return $this->add_to($key, -(int) $offset, $group);
	}

	/** WordPress semantics: false when missing, non-numbers count as 0, never below 0. */
	private function add_to($key, $offset, $group)
	{
		if (!$this->valid_key($key)) {
			return false;
		}
		$group = $this->group($group);
		$derived = $this->derive($key, $group);
		$found = false;
		$value = $this->get($key, $group, true, $found);
		if (!$found) {
			return false;
		}
		if (!is_numeric($value)) {
			$value = 0;
		}
		$value = (int) $value + $offset;
		if ($value < 0) {
			$value = 0;
		}
		if ($this->persistent($group)) {
			try {
				$this->redis_calls++;
				// keep the key's TTL
				$this->redis->set($this->prefix . $derived, (string) $value, array('keepttl'));
			} catch (Exception $e) {
				$this->lost($e);
			}
		}
		$this->cache[$derived] = $value;
		return $value;
	}

	/** Deletes the keys matching the glob pattern (SCAN + UNLINK); false when Redis failed. */
	private function unlink_matching($pattern)
	{
		if ($this->redis === null) {
			return true;
		}
		try {
			$this->redis->setOption(Redis::OPT_SCAN, Redis::SCAN_RETRY);
			$it = null;
			while (($keys = $this->redis->scan($it, $pattern, 1000)) !== false) {
				if (is_array($keys) && $keys !== array()) {
					$this->redis_calls++;
					$this->redis->unlink($keys);
				}
				if ($it === 0 || $it === '0') {
					break;
				}
			}
			return true;
		} catch (Exception $e) {
			$this->lost($e);
			return false;
		}
	}

	private static function glob_escape($s)
	{
		return preg_replace('/([*?\[\]\\\\])/', '\\\\$1', $s);
	}

	/** Empties this environment's cache: its prefix only, never FLUSHDB. */
	public function flush()
	{
		$this->cache = array();
		if ($this->redis === null) {
			return true;
		}
		return $this->unlink_matching(self::glob_escape($this->prefix) . '*');
	}

	public function flush_runtime()
	{
		$this->cache = array();
		return true;
	}

	public function flush_group($group)
	{
		$group = $this->group($group);
		$suffix = $group . ':';
		foreach (array_keys($this->cache) as $derived) {
			$bare = $this->multisite ? preg_replace('/^[0-9]+:/', '', $derived) : $derived;
			if (strpos($bare, $suffix) === 0 || strpos($derived, $suffix) === 0) {
				unset($this->cache[$derived]);
			}
		}
		if ($this->redis === null || isset($this->non_persistent_groups[$group])) {
			return true;
		}
		$escaped = self::glob_escape($group) . ':*';
		$ok = $this->unlink_matching(self::glob_escape($this->prefix) . $escaped);
		if ($this->multisite && !isset($this->global_groups[$group])) {
			$ok = $this->unlink_matching(self::glob_escape($this->prefix) . '[0-9]*:' . $escaped) && $ok;
		}
		return $ok;
	}

	public function add_global_groups($groups)
	{
		foreach ((array) $groups as $group) {
			$this->global_groups[$group] = true;
		}
	}

	public function add_non_persistent_groups($groups)
	{
		foreach ((array) $groups as $group) {
			$this->non_persistent_groups[$group] = true;
		}
	}

	public function switch_to_blog($blog_id)
	{
		$this->blog_prefix = $this->multisite ? (int) $blog_id . ':' : '';
	}

	public function reset()
	{
		$this->switch_to_blog(function_exists('get_current_blog_id') ? get_current_blog_id() : 0);
		foreach (array_keys($this->cache) as $derived) {
			$group = $this->multisite ? preg_replace('/^[0-9]+:/', '', $derived) : $derived;
			$group = substr($group, 0, (int) strpos($group, ':'));
			if (!isset($this->global_groups[$group])) {
				unset($this->cache[$derived]);
			}
		}
	}

	public function close()
	{
		if ($this->redis !== null) {
			try {
				$this->redis->close();
			} catch (Exception $e) {
				// closing anyway
			}
			$this->redis = null;
		}
		return true;
	}

	public function stats()
	{
		echo '<p>';
		echo '<strong>Cache Hits:</strong> ' . (int) $this->cache_hits . '<br />';
		echo '<strong>Cache Misses:</strong> ' . (int) $this->cache_misses . '<br />';
		echo '<strong>Redis:</strong> ' . ($this->redis !== null ? 'connected' : 'not used (' . htmlspecialchars((string) $this->redis_error) . ')') . '<br />';
		echo '</p>';
	}
}
