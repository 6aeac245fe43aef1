<?php
/**
 * Pressluft PHP helper - the WordPress operations Pressluft needs, without WP-CLI.
 *
 * Installed node-wide by node-provision (/usr/local/lib/pressluft/pressluft-helper.php, root, 0644)
 * and run with the PHP CLI as the environment's Linux user:
 *
 *   runuser -u <user> -- php /usr/local/lib/pressluft/pressluft-helper.php --path=<env root>/current <command> ...
 *
 * Commands
 *   install --title T --admin-user U --admin-email E --url URL
 *                       Install WordPress (no-op when installed). The admin password is read from the
 *                       environment variable PRESSLUFT_ADMIN_PASSWORD, else from stdin - never argv.
 *                       It must not contain ' " \ (wp-login.php compares the slashed form value)
 *                       nor start or end with whitespace (wp_install() trims it).
 *   is-installed        Exit 0 when WordPress is installed, 1 when not.
 *   db-ping             Connect with the credentials of wp-config.php and run SELECT 1.
 *   option-get NAME     Print an option's value (exit 1 when it does not exist).
 *   db-upgrade          WordPress' database upgrade (wp_upgrade(), what wp-admin/upgrade.php runs) when
 *                       the db_version option differs from this WordPress' $wp_db_version; prints
 *                       {"from": old, "to": new, "changed": bool}. Plugins are not loaded (WP_INSTALLING,
 *                       as upgrade.php does), no HTTP.
 *   login-token --user U [--ttl 60]
 *                       Create a one-time login token (consumed by the mu-plugin pressluft-login.php)
 *                       and print the login URL.
 *   ensure-admin --user U --email E
 *                       Make sure the administrator U exists (an imported database lacks Pressluft's):
 *                       created with the password from PRESSLUFT_ADMIN_PASSWORD (else stdin) when
 *                       missing, given the administrator role when it has another; an existing
 *                       user's password is left alone. Prints {"created": bool, "changed": bool}.
 *   search-replace --old URL[ URL...] --new URL [--dry-run] [--table-prefix P]
 *                       Replace a site URL in every text column of the environment's tables
 *                       (serialized data kept valid, JSON-escaped and URL-encoded forms included),
 *                       then home/siteurl, rewrite rules and the (non-persistent) object cache.
 *                       With --table-prefix only the tables named P* are rewritten, nothing else.
 *   replace-string --old X --new Y
 *                       The search-replace of one value read verbatim from stdin, printed as
 *                       {"value": ..., "replacements": N}; no WordPress, no database (tests, diagnostics).
 *
 * Output contract: exactly one JSON object on stdout, {"ok": true|false, ...}; exit 0 on success,
 * 1 on failure, 2 on usage errors. Whatever WordPress prints is captured and dropped. WordPress ends
 * the process itself in some error paths (dead_db() exits 0 when the database is unreachable): the
 * helper checks the database first, routes wp_die() to a JSON error, and a shutdown handler turns
 * any exit without a result into {"ok": false} with exit status 1. Callers must treat a missing or
 * unparsable JSON line as a failure too.
 */

if (PHP_SAPI !== 'cli') {
	http_response_code(404);
	exit(1);
}

error_reporting(E_ALL & ~E_DEPRECATED & ~E_USER_DEPRECATED & ~E_NOTICE & ~E_USER_NOTICE);
ini_set('display_errors', 'stderr');
ini_set('log_errors', '0');

const PRESSLUFT_HELPER_VERSION = '1';

final class Pressluft_Helper_Result
{
	public static $done = false;
	public static $command = null;

	public static function captured()
	{
		$out = '';
		while (ob_get_level() > 0) {
			$out .= (string) ob_get_clean();
		}
		return $out;
	}

	public static function emit(array $result, $code)
	{
		$captured = self::captured();
		if ($code !== 0 && !isset($result['output']) && trim($captured) !== '') {
			$result['output'] = self::summarize($captured);
		}
		self::$done = true;
		$result = array('ok' => $code === 0) + $result;
		if (self::$command !== null && !isset($result['command'])) {
			$result['command'] = self::$command;
		}
		fwrite(STDOUT, json_encode($result, JSON_UNESCAPED_SLASHES | JSON_PARTIAL_OUTPUT_ON_ERROR) . "\n");
		exit($code);
	}

	public static function summarize($text)
	{
		$text = trim(preg_replace('/\s+/', ' ', strip_tags((string) $text)));
		return strlen($text) > 500 ? substr($text, 0, 500) . '...' : $text;
	}
}

function pressluft_ok(array $result = array())
{
	Pressluft_Helper_Result::emit($result, 0);
}

function pressluft_fail($error, array $extra = array(), $code = 1)
{
	Pressluft_Helper_Result::emit(array('error' => $error) + $extra, $code);
}

// Any exit without a result (WordPress' die() paths, fatal errors) is a failure.
register_shutdown_function(function () {
	if (Pressluft_Helper_Result::$done) {
		return;
	}
	$out = Pressluft_Helper_Result::captured();
	$last = error_get_last();
	$error = 'WordPress stopped before the helper produced a result';
	if (stripos($out, 'database connection') !== false || stripos($out, 'database error') !== false) {
		$error = 'database connection failed';
	} elseif ($last && in_array($last['type'], array(E_ERROR, E_PARSE, E_CORE_ERROR, E_COMPILE_ERROR), true)) {
		$error = 'PHP fatal error: ' . $last['message'];
	}
	Pressluft_Helper_Result::$done = true;
	$result = array('ok' => false, 'error' => $error, 'command' => Pressluft_Helper_Result::$command);
	if (trim($out) !== '') {
		$result['output'] = Pressluft_Helper_Result::summarize($out);
	}
	fwrite(STDOUT, json_encode($result, JSON_UNESCAPED_SLASHES | JSON_PARTIAL_OUTPUT_ON_ERROR) . "\n");
	exit(1);
});

function pressluft_wp_die_handler($message, $title = '', $args = array())
{
	if (is_object($message) && method_exists($message, 'get_error_message')) {
		$message = $message->get_error_message();
	}
	pressluft_fail('WordPress error: ' . Pressluft_Helper_Result::summarize(is_scalar($message) ? $message : json_encode($message)));
}

function pressluft_return_die_handler()
{
	return 'pressluft_wp_die_handler';
}

// ------------------------------------------------------------------ arguments -------------------
function pressluft_parse_args(array $argv)
{
	$opts = array();
	$pos = array();
	$n = count($argv);
	for ($i = 1; $i < $n; $i++) {
		$a = $argv[$i];
		if (strncmp($a, '--', 2) === 0 && strlen($a) > 2) {
			$eq = strpos($a, '=');
			if ($eq !== false) {
				$opts[substr($a, 2, $eq - 2)] = substr($a, $eq + 1);
			} elseif (in_array(substr($a, 2), array('allow-http', 'version', 'dry-run'), true)) {
				$opts[substr($a, 2)] = true;
			} elseif ($i + 1 < $n && strncmp($argv[$i + 1], '--', 2) !== 0) {
				$opts[substr($a, 2)] = $argv[++$i];
			} else {
				$opts[substr($a, 2)] = true;
			}
		} else {
			$pos[] = $a;
		}
	}
	return array($opts, $pos);
}

function pressluft_opt(array $opts, $name, $required = true)
{
	if (!isset($opts[$name]) || $opts[$name] === true || $opts[$name] === '') {
		if ($required) {
			pressluft_fail("missing option --$name", array(), 2);
		}
		return null;
	}
	return (string) $opts[$name];
}

// ------------------------------------------------------------------ database --------------------
/** DB_* constants of wp-config.php, read without executing it. Null when not in the usual form. */
function pressluft_db_config($path)
{
	$file = $path . '/wp-config.php';
	if (!is_readable($file)) {
		$file = dirname($path) . '/wp-config.php';
	}
	$text = @file_get_contents($file);
	if ($text === false) {
		return null;
	}
	$cfg = array();
	$re = '/define\(\s*[\'"](DB_NAME|DB_USER|DB_PASSWORD|DB_HOST)[\'"]\s*,\s*(?:\'((?:[^\'\\\\]|\\\\.)*)\'|"((?:[^"\\\\$]|\\\\.)*)")\s*\)/';
	if (preg_match_all($re, $text, $m, PREG_SET_ORDER)) {
		foreach ($m as $match) {
			$value = isset($match[3]) && $match[3] !== '' ? stripcslashes($match[3]) : preg_replace('/\\\\([\\\\\'])/', '$1', $match[2]);
			$cfg[$match[1]] = $value;
		}
	}
	foreach (array('DB_NAME', 'DB_USER', 'DB_PASSWORD', 'DB_HOST') as $k) {
		if (!array_key_exists($k, $cfg)) {
			return null;
		}
	}
	return $cfg;
}

/** Connect like WordPress does (host, host:port, host:/socket, localhost = socket): a mysqli
 * connection (utf8mb4), or the reason as a string. */
function pressluft_db_connect(array $cfg)
{
	if (!function_exists('mysqli_init')) {
		return 'the PHP mysqli extension is missing';
	}
	mysqli_report(MYSQLI_REPORT_OFF);
	$host = $cfg['DB_HOST'];
	$port = null;
	$socket = null;
	if (preg_match('/^(.*?):(\d+)$/', $host, $m)) {
		$host = $m[1];
		$port = (int) $m[2];
	} elseif (preg_match('/^(.*?):(\/.+)$/', $host, $m)) {
		$host = $m[1] === '' ? 'localhost' : $m[1];
		$socket = $m[2];
	}
	$db = mysqli_init();
	mysqli_options($db, MYSQLI_OPT_CONNECT_TIMEOUT, 5);
	$ok = @mysqli_real_connect($db, $host, $cfg['DB_USER'], $cfg['DB_PASSWORD'], $cfg['DB_NAME'], $port, $socket);
	if (!$ok) {
		return 'cannot connect to the database: ' . mysqli_connect_error();
	}
	mysqli_set_charset($db, 'utf8mb4');
	return $db;
}

function pressluft_db_ping(array $cfg)
{
	$db = pressluft_db_connect($cfg);
	if (is_string($db)) {
		return $db;
	}
	$res = @mysqli_query($db, 'SELECT 1');
	if (!$res) {
		$err = mysqli_error($db);
		mysqli_close($db);
		return 'SELECT 1 failed: ' . $err;
	}
	mysqli_close($db);
	return true;
}

// ------------------------------------------------------------------ WordPress -------------------
function pressluft_load_wordpress($path, array $opts, $installing, $url = null)
{
	if (!is_file($path . '/wp-load.php')) {
		pressluft_fail("no WordPress at $path (wp-load.php missing)");
	}
	// Fail fast and clearly when the database is unreachable (dead_db() would exit 0).
	$cfg = pressluft_db_config($path);
	if ($cfg !== null) {
		$ping = pressluft_db_ping($cfg);
		if ($ping !== true) {
			pressluft_fail($ping, array('check' => 'database'));
		}
	}
	$host = $url ? parse_url($url, PHP_URL_HOST) : null;
	$_SERVER['HTTP_HOST'] = $host ?: 'localhost';
	$_SERVER['SERVER_NAME'] = $_SERVER['HTTP_HOST'];
	$_SERVER['REQUEST_URI'] = '/';
	$_SERVER['REQUEST_METHOD'] = 'GET';
	$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
	$_SERVER['SERVER_PORT'] = '80';
	$_SERVER['REMOTE_ADDR'] = '127.0.0.1';
	if ($url && parse_url($url, PHP_URL_SCHEME) === 'https') {
		$_SERVER['HTTPS'] = 'on';
		$_SERVER['SERVER_PORT'] = '443';
	}
	if ($installing && !defined('WP_INSTALLING')) {
		define('WP_INSTALLING', true);
	}
	if (!defined('DISABLE_WP_CRON')) {
		define('DISABLE_WP_CRON', true);
	}
	if (!defined('WP_USE_THEMES')) {
		define('WP_USE_THEMES', false);
	}
	// Hooks registered before WordPress loads (WP_Hook::build_preinitialized_hooks).
	global $wp_filter;
	$wp_filter = array();
	foreach (array('wp_die_handler', 'wp_die_ajax_handler', 'wp_die_json_handler', 'wp_die_jsonp_handler',
		'wp_die_xmlrpc_handler', 'wp_die_xml_handler') as $hook) {
		$wp_filter[$hook][PHP_INT_MAX]['pressluft'] = array('function' => 'pressluft_return_die_handler', 'accepted_args' => 1);
	}
	if (empty($opts['allow-http'])) {
		// No outbound HTTP from the helper (loopback permalink tests, update checks, pings).
		$wp_filter['pre_http_request'][10]['pressluft'] = array(
			'function' => function () {
				return new WP_Error('pressluft_no_http', 'HTTP requests are disabled in the Pressluft helper');
			},
			'accepted_args' => 1,
		);
	}
	chdir($path);
	ob_start();
	require_once $path . '/wp-load.php';
}

function pressluft_cmd_install($path, array $opts)
{
	$title = pressluft_opt($opts, 'title');
	$user = pressluft_opt($opts, 'admin-user');
	$email = pressluft_opt($opts, 'admin-email');
	$url = pressluft_opt($opts, 'url');
	if (!preg_match('#^https?://[^/\s]+#', $url)) {
		pressluft_fail('--url must be an http(s) URL', array(), 2);
	}
	$password = getenv('PRESSLUFT_ADMIN_PASSWORD');
	if ($password === false || $password === '') {
		$password = (string) stream_get_contents(STDIN);
		$password = rtrim($password, "\r\n");
	}
	if ($password === '') {
		pressluft_fail('no admin password (set PRESSLUFT_ADMIN_PASSWORD or pipe it on stdin)', array(), 2);
	}
	if (strpbrk($password, "'\"\\") !== false || $password !== trim($password)) {
		// wp-login.php compares the slashed form field (wp_signon() does not unslash it) and
		// wp_install() trims: such a password could never be used to log in.
		pressluft_fail('the admin password must not contain quotes or backslashes, nor start or end with whitespace', array(), 2);
	}
	pressluft_load_wordpress($path, $opts, true, $url);
	require_once ABSPATH . 'wp-admin/includes/upgrade.php';
	if (is_blog_installed()) {
		pressluft_ok(array('installed' => true, 'changed' => false));
	}
	if (!is_email($email)) {
		pressluft_fail('--admin-email is not a valid e-mail address', array(), 2);
	}
	if (!validate_username($user)) {
		pressluft_fail('--admin-user is not a valid WordPress user name', array(), 2);
	}
	$result = wp_install($title, $user, $email, true, '', $password);
	if (!is_array($result) || empty($result['user_id']) || is_wp_error($result['user_id'])) {
		pressluft_fail('wp_install failed');
	}
	// Pretty permalinks (nginx routes everything to index.php); WordPress' own loopback test cannot
	// run here.
	global $wp_rewrite;
	$wp_rewrite->set_permalink_structure('/%postname%/');
	flush_rewrite_rules(false);
	update_option('home', untrailingslashit($url));
	update_option('siteurl', untrailingslashit($url));
	if (!is_blog_installed()) {
		pressluft_fail('WordPress reports not installed after wp_install');
	}
	pressluft_ok(array('installed' => true, 'changed' => true, 'admin_user' => $user, 'user_id' => (int) $result['user_id']));
}

function pressluft_cmd_is_installed($path, array $opts)
{
	// is_blog_installed() (what `wp core is-installed` asks) needs only the database layer and
	// the options API: SHORTINIT stops wp-settings.php before plugins and themes, ~5x faster.
	define('SHORTINIT', true);
	pressluft_load_wordpress($path, $opts, true);
	if (is_blog_installed()) {
		pressluft_ok(array('installed' => true));
	}
	pressluft_fail('WordPress is not installed', array('installed' => false));
}

function pressluft_cmd_db_ping($path, array $opts)
{
	$cfg = pressluft_db_config($path);
	if ($cfg === null) {
		// Unusual wp-config.php: let WordPress connect (SHORTINIT) and ask it.
		define('SHORTINIT', true);
		pressluft_load_wordpress($path, $opts, false);
		global $wpdb;
		if (!$wpdb->check_connection(false) || $wpdb->get_var('SELECT 1') !== '1') {
			pressluft_fail('database query failed', array('check' => 'database'));
		}
		pressluft_ok(array('database' => 'reachable'));
	}
	$ping = pressluft_db_ping($cfg);
	if ($ping !== true) {
		pressluft_fail($ping, array('check' => 'database'));
	}
	pressluft_ok(array('database' => 'reachable', 'db_name' => $cfg['DB_NAME']));
}

function pressluft_cmd_option_get($path, array $opts, array $pos)
{
	if (!isset($pos[1]) || $pos[1] === '') {
		pressluft_fail('usage: option-get NAME', array(), 2);
	}
	$name = $pos[1];
	pressluft_load_wordpress($path, $opts, true);
	if (!is_blog_installed()) {
		pressluft_fail('WordPress is not installed', array('installed' => false));
	}
	$missing = new stdClass();
	$value = get_option($name, $missing);
	if ($value === $missing) {
		pressluft_fail("option $name does not exist", array('name' => $name, 'exists' => false));
	}
	pressluft_ok(array('name' => $name, 'exists' => true, 'value' => $value));
}

function pressluft_cmd_db_upgrade($path, array $opts)
{
	pressluft_load_wordpress($path, $opts, true);
	require_once ABSPATH . 'wp-admin/includes/upgrade.php';
	if (!is_blog_installed()) {
		pressluft_fail('WordPress is not installed', array('installed' => false));
	}
	global $wp_db_version, $wpdb;
	$from = (int) get_option('db_version');
	$to = (int) $wp_db_version;
	if ($from === $to) {
		pressluft_ok(array('from' => $from, 'to' => $to, 'changed' => false));
	}
	wp_upgrade();
	wp_cache_delete('db_version', 'options');
	wp_cache_delete('alloptions', 'options');
	$now = (int) $wpdb->get_var("SELECT option_value FROM {$wpdb->options} WHERE option_name = 'db_version'");
	if ($now !== $to) {
		pressluft_fail("the database upgrade left db_version at $now, not $to", array('from' => $from, 'to' => $to, 'changed' => $now !== $from));
	}
	pressluft_ok(array('from' => $from, 'to' => $to, 'changed' => true));
}

function pressluft_cmd_login_token($path, array $opts)
{
	$login = pressluft_opt($opts, 'user');
	$ttl = isset($opts['ttl']) ? (int) $opts['ttl'] : 60;
	if ($ttl < 10 || $ttl > 3600) {
		pressluft_fail('--ttl must be between 10 and 3600 seconds', array(), 2);
	}
	pressluft_load_wordpress($path, $opts, false);
	$user = get_user_by('login', $login);
	if (!$user) {
		pressluft_fail("no WordPress user $login");
	}
	if (!function_exists('pressluft_login_transient_key')) {
		pressluft_fail('the pressluft-login mu-plugin is not installed in this release');
	}
	$token = bin2hex(random_bytes(32));
	$expires = time() + $ttl;
	if (!set_transient(pressluft_login_transient_key($token), array('user_id' => (int) $user->ID, 'expires' => $expires), $ttl)) {
		pressluft_fail('cannot store the login token');
	}
	$url = add_query_arg('pressluft_login', $token, wp_login_url());
	pressluft_ok(array('url' => $url, 'user' => $login, 'expires_at' => gmdate('Y-m-d\TH:i:s\Z', $expires)));
}

function pressluft_cmd_ensure_admin($path, array $opts)
{
	$login = pressluft_opt($opts, 'user');
	$email = pressluft_opt($opts, 'email');
	pressluft_load_wordpress($path, $opts, false);
	require_once ABSPATH . 'wp-admin/includes/user.php';
	if (!is_blog_installed()) {
		pressluft_fail('WordPress is not installed', array('installed' => false));
	}
	$user = get_user_by('login', $login);
	if ($user) {
		if (in_array('administrator', (array) $user->roles, true)) {
			pressluft_ok(array('user' => $login, 'created' => false, 'changed' => false));
		}
		$user->set_role('administrator');
		pressluft_ok(array('user' => $login, 'created' => false, 'changed' => true));
	}
	$password = getenv('PRESSLUFT_ADMIN_PASSWORD');
	if ($password === false || $password === '') {
		$password = rtrim((string) stream_get_contents(STDIN), "\r\n");
	}
	if ($password === '') {
		pressluft_fail('no admin password (set PRESSLUFT_ADMIN_PASSWORD or pipe it on stdin)', array(), 2);
	}
	if (!validate_username($login)) {
		pressluft_fail('--user is not a valid WordPress user name', array(), 2);
	}
	if (email_exists($email)) {
		// another user of the imported site has the address: Pressluft's gets a +alias of it
		$email = preg_replace('/@/', '+pressluft@', $email, 1);
	}
	$id = wp_insert_user(array('user_login' => $login, 'user_pass' => $password, 'user_email' => $email,
		'role' => 'administrator'));
	if (is_wp_error($id)) {
		pressluft_fail('cannot create the administrator: ' . $id->get_error_message());
	}
	pressluft_ok(array('user' => $login, 'created' => true, 'changed' => true, 'user_id' => (int) $id));
}

// ------------------------------------------------------------------ search-replace --------------
/**
 * The forms of $old searched for and their replacements, longest first: the plain text, the
 * JSON-escaped form (http:\/\/host) and the URL-encoded form (rawurlencode).
 */
function pressluft_replace_forms($old, $new)
{
	$forms = array(
		$old => $new,
		str_replace('/', '\\/', $old) => str_replace('/', '\\/', $new),
		rawurlencode($old) => rawurlencode($new),
	);
	uksort($forms, function ($a, $b) {
		return strlen($b) - strlen($a);
	});
	return $forms;
}

/**
 * Plain text replacement of all forms in one left-to-right pass (a replacement is never searched
 * again, so $new may contain $old). Byte-wise: works on any encoding.
 */
function pressluft_replace_plain($s, array $forms, &$count)
{
	$alternatives = array();
	foreach (array_keys($forms) as $form) {
		$alternatives[] = preg_quote((string) $form, '/');
	}
	$n = 0;
	$out = preg_replace_callback('/' . implode('|', $alternatives) . '/', function ($m) use ($forms) {
		return $forms[$m[0]];
	}, $s, -1, $n);
	if ($out === null) {
		return $s; // PCRE failure (backtrack limit): leave the value as it is
	}
	$count += $n;
	return $out;
}

/**
 * Does $s (without surrounding whitespace) start like a PHP-serialized value? A first filter only,
 * looser than WordPress' is_serialized(): text that starts like serialized data but is not
 * well-formed (truncated, wrong lengths) is left alone rather than rewritten as plain text.
 */
function pressluft_looks_serialized($s)
{
	return $s === 'N;' || (bool) preg_match('/^(?:[aOC]:[0-9]+:[{"]|[sSE]:[0-9]+:"|[bid]:[0-9.E+INFA-]*;)/', $s);
}

/**
 * $value (a string as stored in a database column) with every occurrence of $old replaced by $new,
 * also in its JSON-escaped and URL-encoded forms; $count grows by the number of occurrences
 * replaced. Serialized PHP values stay valid: strings inside them (array keys and values, object
 * properties, serialized values nested in strings) are rewritten and their s:N: byte lengths
 * recomputed. Serialized text that PHP cannot unserialize, or that the length-correcting parser
 * does not accept, is returned unchanged. Bytes outside the occurrences are never changed.
 */
function pressluft_replace_in_value($value, $old, $new, &$count)
{
	// Serialized values nested in strings nested in serialized values...: bounded (the PHP stack).
	static $nesting = 0;
	if (!is_string($value) || !is_string($old) || $old === '' || $nesting > 32) {
		return $value;
	}
	$nesting++;
	try {
		return pressluft_replace_in_string($value, $old, (string) $new, $count);
	} finally {
		$nesting--;
	}
}

function pressluft_replace_in_string($value, $old, $new, &$count)
{
	$forms = pressluft_replace_forms($old, $new);
	$found = false;
	foreach (array_keys($forms) as $form) {
		if (strpos($value, (string) $form) !== false) {
			$found = true;
			break;
		}
	}
	if (!$found) {
		return $value; // the common case, and nothing nested can contain an occurrence either
	}
	// WordPress' maybe_unserialize() tolerates surrounding whitespace: keep it as it is.
	$core = trim($value);
	if (!pressluft_looks_serialized($core)) {
		return pressluft_replace_plain($value, $forms, $count);
	}
	$lead = substr($value, 0, strspn($value, " \t\n\r\0\x0B"));
	$trail = substr($value, strlen($lead) + strlen($core));
	$data = @unserialize($core, array('allowed_classes' => false));
	if ($data === false && $core !== 'b:0;') {
		return $value; // looks serialized but is not well-formed: never touch it
	}
	$n = 0;
	$out = null;
	if (serialize($data) === $core) {
		// Plain data (no objects, no references) that round-trips exactly: rewrite the values.
		$replaced = pressluft_replace_in_data($data, $old, $new, $n, 0);
		if ($replaced !== null) {
			$out = serialize($replaced[0]);
		}
	}
	if ($out === null) {
		// Objects of unknown classes, references, non-canonical text: rewrite the serialized text.
		$n = 0;
		$out = pressluft_serialized_rewrite($core, $old, $new, $n);
		if ($out === null) {
			return $value;
		}
	}
	if ($out !== $core) {
		$check = @unserialize($out, array('allowed_classes' => false));
		if ($check === false && $out !== 'b:0;') {
			return $value; // cannot happen; but never produce broken serialized data
		}
	}
	$count += $n;
	return $lead . $out . $trail;
}

/**
 * Replacement inside unserialized data: array(result) or null when the text form must be rewritten
 * instead (objects, references, a string key that would change - it could collide with another
 * key or turn into an integer key).
 */
function pressluft_replace_in_data($data, $old, $new, &$count, $depth)
{
	if (is_string($data)) {
		return array(pressluft_replace_in_value($data, $old, $new, $count));
	}
	if (is_object($data) || $depth > 512) {
		return null;
	}
	if (!is_array($data)) {
		return array($data);
	}
	$out = array();
	foreach ($data as $key => $item) {
		if (ReflectionReference::fromArrayElement($data, $key) !== null) {
			return null;
		}
		if (is_string($key)) {
			$probe = 0;
			if (pressluft_replace_in_value($key, $old, $new, $probe) !== $key) {
				return null;
			}
		}
		$replaced = pressluft_replace_in_data($item, $old, $new, $count, $depth + 1);
		if ($replaced === null) {
			return null;
		}
		$out[$key] = $replaced[0];
	}
	return array($out);
}

/**
 * Length-correcting rewrite of the serialized text $s: every s:N:"..." token is read by its
 * declared byte length, its bytes are rewritten (recursively: they may hold serialized data
 * themselves) and N recomputed. Class names, numbers, references and custom (C:) payloads are
 * copied as they are. Null when $s is not exactly one well-formed serialized value.
 */
function pressluft_serialized_rewrite($s, $old, $new, &$count)
{
	$pos = 0;
	$n = 0;
	$out = pressluft_serialized_value($s, $pos, $old, $new, $n, 0, false);
	if ($out === null || $pos !== strlen($s)) {
		return null;
	}
	$count += $n;
	return $out;
}

function pressluft_serialized_value($s, &$pos, $old, $new, &$count, $depth, $key)
{
	$len = strlen($s);
	if ($depth > 512 || $pos + 2 > $len) {
		return null;
	}
	$type = $s[$pos];
	if ($key && $type !== 'i' && $type !== 's') {
		return null; // array keys and property names are integers or strings
	}
	switch ($type) {
		case 'N':
		case 'b':
		case 'i':
		case 'd':
		case 'r':
		case 'R':
			$re = array(
				'N' => '/\GN;/',
				'b' => '/\Gb:[01];/',
				'i' => '/\Gi:[+-]?[0-9]+;/',
				'd' => '/\Gd:(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NAN|-?INF);/',
				'r' => '/\Gr:[0-9]+;/',
				'R' => '/\GR:[0-9]+;/',
			);
			if (!preg_match($re[$type], $s, $m, 0, $pos)) {
				return null;
			}
			$pos += strlen($m[0]);
			return $m[0];
		case 's':
			if (!preg_match('/\Gs:([0-9]+):"/', $s, $m, 0, $pos)) {
				return null;
			}
			$start = $pos + strlen($m[0]);
			$size = $m[1];
			if (strlen($size) > 10 || $start + (int) $size + 2 > $len) {
				return null;
			}
			$size = (int) $size;
			if (substr($s, $start + $size, 2) !== '";') {
				return null;
			}
			$bytes = substr($s, $start, $size);
			$token = substr($s, $pos, $start + $size + 2 - $pos);
			$pos = $start + $size + 2;
			$rewritten = pressluft_replace_in_value($bytes, $old, $new, $count);
			if ($rewritten === $bytes) {
				return $token;
			}
			return 's:' . strlen($rewritten) . ':"' . $rewritten . '";';
		case 'a':
			if (!preg_match('/\Ga:([0-9]+):\{/', $s, $m, 0, $pos)) {
				return null;
			}
			$pos += strlen($m[0]);
			$out = $m[0];
			$body = pressluft_serialized_members($s, $pos, $m[1], $old, $new, $count, $depth);
			return $body === null ? null : $out . $body;
		case 'O':
		case 'C':
			if (!preg_match('/\G' . $type . ':([0-9]+):"/', $s, $m, 0, $pos)) {
				return null;
			}
			$start = $pos + strlen($m[0]);
			if (strlen($m[1]) > 10 || $start + (int) $m[1] > $len) {
				return null;
			}
			$name = substr($s, $start, (int) $m[1]);
			if (!preg_match('/\G":([0-9]+):\{/', $s, $m2, 0, $start + (int) $m[1])) {
				return null;
			}
			$head = substr($s, $pos, $start + (int) $m[1] + strlen($m2[0]) - $pos);
			$pos += strlen($head);
			if ($name === '' || strpbrk($name, "\"\0") !== false) {
				return null;
			}
			if ($type === 'C') {
				// Serializable::serialize() payload of $m2[1] bytes, format owned by the class.
				if (strlen($m2[1]) > 10 || $pos + (int) $m2[1] + 1 > $len || $s[$pos + (int) $m2[1]] !== '}') {
					return null;
				}
				$payload = substr($s, $pos, (int) $m2[1] + 1);
				$pos += strlen($payload);
				return $head . $payload;
			}
			$body = pressluft_serialized_members($s, $pos, $m2[1], $old, $new, $count, $depth);
			return $body === null ? null : $head . $body;
	}
	return null; // S: (escaped strings), E: (enums) and anything else: not rewritten
}

/** $n key/value pairs and the closing brace of an array or object. */
function pressluft_serialized_members($s, &$pos, $n, $old, $new, &$count, $depth)
{
	if (strlen($n) > 10) {
		return null;
	}
	$out = '';
	for ($i = 0, $n = (int) $n; $i < $n; $i++) {
		$k = pressluft_serialized_value($s, $pos, $old, $new, $count, $depth + 1, true);
		if ($k === null) {
			return null;
		}
		$v = pressluft_serialized_value($s, $pos, $old, $new, $count, $depth + 1, false);
		if ($v === null) {
			return null;
		}
		$out .= $k . $v;
	}
	if ($pos >= strlen($s) || $s[$pos] !== '}') {
		return null;
	}
	$pos++;
	return $out . '}';
}

function pressluft_cmd_replace_string(array $opts)
{
	$old = pressluft_opt($opts, 'old');
	$new = isset($opts['new']) && is_string($opts['new']) ? $opts['new'] : pressluft_opt($opts, 'new');
	$value = stream_get_contents(STDIN);
	if ($value === false) {
		pressluft_fail('cannot read the value from stdin');
	}
	$count = 0;
	$result = pressluft_replace_in_value($value, $old, $new, $count);
	if (preg_match('//u', $result)) {
		pressluft_ok(array('value' => $result, 'replacements' => $count));
	}
	// Not UTF-8 (binary column data): JSON cannot carry it as a string.
	pressluft_ok(array('value' => null, 'value_base64' => base64_encode($result), 'replacements' => $count));
}

/**
 * What the database prefilter searches for: the host name of $old when every form of it (plain,
 * JSON-escaped, URL-encoded) contains the host verbatim - true for host names (letters, digits,
 * dots, dashes), which rawurlencode() leaves as they are - else the forms themselves. A superset
 * of the rows with an occurrence; the exact forms are matched in PHP.
 */
function pressluft_prefilter_needles($old, array $forms)
{
	$host = parse_url($old, PHP_URL_HOST);
	if (is_string($host) && strlen($host) >= 4 && preg_match('/^[A-Za-z0-9.-]+$/', $host)) {
		foreach (array_keys($forms) as $form) {
			if (strpos((string) $form, $host) === false) {
				return array_keys($forms);
			}
		}
		return array($host);
	}
	return array_keys($forms);
}

/** `name` quoted as a MySQL identifier, with % doubled for $wpdb->prepare(). */
function pressluft_sql_ident($name)
{
	return '`' . str_replace(array('`', '%'), array('``', '%%'), $name) . '`';
}

/**
 * The few wpdb methods search-replace uses, over mysqli with the credentials and table prefix of
 * wp-config.php (parsed, not executed): search-replace --lean runs without loading WordPress.
 * Placeholders as wpdb::prepare (%s quoted and escaped, %% a percent sign).
 */
class Pressluft_Lean_DB
{
	public $prefix;
	public $base_prefix;
	public $options;
	public $last_error = '';
	private $db;
	private $config;

	public static function open($path)
	{
		if (!function_exists('mysqli_init')) {
			// before anything is touched: the caller runs PHP with its full configuration then
			pressluft_fail('--lean: this PHP has no mysqli', array('no_mysqli' => true), 3);
		}
		$cfg = pressluft_db_config($path);
		$file = is_readable($path . '/wp-config.php') ? $path . '/wp-config.php' : dirname($path) . '/wp-config.php';
		$text = (string) @file_get_contents($file);
		if ($cfg === null || !preg_match('/^\s*\$table_prefix\s*=\s*[\'"]([A-Za-z0-9_]{1,32})[\'"]\s*;/m', $text, $m)) {
			pressluft_fail('--lean: cannot read the database settings and $table_prefix from wp-config.php');
		}
		$db = pressluft_db_connect($cfg);
		if (is_string($db)) {
			pressluft_fail($db, array('check' => 'database'));
		}
		$self = new self();
		$self->db = $db;
		$self->config = $text;
		$self->prefix = $self->base_prefix = $m[1];
		$self->options = $m[1] . 'options';
		if (!defined('ARRAY_A')) {
			define('ARRAY_A', 'ARRAY_A');
			define('ARRAY_N', 'ARRAY_N');
		}
		if ($self->get_var("SELECT COUNT(*) FROM `{$self->options}` WHERE option_name = 'siteurl'") !== '1') {
			pressluft_fail('WordPress is not installed', array('installed' => false));
		}
		return $self;
	}

	public function config_defines($constant)
	{
		return (bool) preg_match('/define\(\s*[\'"]' . preg_quote($constant, '/') . '[\'"]/', $this->config);
	}

	public function esc_like($text)
	{
		return addcslashes($text, '_%\\');
	}

	public function prepare($query, $args)
	{
		$args = is_array($args) ? array_values($args) : array_slice(func_get_args(), 1);
		$i = 0;
		$db = $this->db;
		return preg_replace_callback('/%%|%s/', function ($m) use (&$i, $args, $db) {
			return $m[0] === '%%' ? '%' : "'" . mysqli_real_escape_string($db, (string) $args[$i++]) . "'";
		}, $query);
	}

	public function query($sql)
	{
		$this->last_error = '';
		$res = mysqli_query($this->db, $sql);
		if ($res === false) {
			$this->last_error = mysqli_error($this->db);
			return false;
		}
		if ($res === true) {
			return mysqli_affected_rows($this->db);
		}
		$n = mysqli_num_rows($res);
		mysqli_free_result($res);
		return $n;
	}

	public function get_results($sql, $mode = 'ARRAY_A')
	{
		$this->last_error = '';
		$res = mysqli_query($this->db, $sql);
		if (!$res instanceof mysqli_result) {
			$this->last_error = mysqli_error($this->db);
			return null;
		}
		$rows = array();
		while (($row = $mode === 'ARRAY_N' ? mysqli_fetch_row($res) : mysqli_fetch_assoc($res)) !== null) {
			$rows[] = $row;
		}
		mysqli_free_result($res);
		return $rows;
	}

	public function get_var($sql)
	{
		$rows = $this->get_results($sql, 'ARRAY_N');
		return isset($rows[0][0]) ? $rows[0][0] : null;
	}

	public function update($table, array $data, array $where)
	{
		$set = array();
		$cond = array();
		$args = array();
		foreach ($data as $c => $v) {
			$set[] = pressluft_sql_ident($c) . ' = %s';
			$args[] = $v;
		}
		foreach ($where as $c => $v) {
			$cond[] = pressluft_sql_ident($c) . ' = %s';
			$args[] = $v;
		}
		return $this->query($this->prepare('UPDATE ' . pressluft_sql_ident($table) . ' SET ' . implode(', ', $set)
			. ' WHERE ' . implode(' AND ', $cond), $args));
	}
}

function pressluft_cmd_search_replace($path, array $opts)
{
	// --old: one URL, or several separated by spaces (both schemes of a host, an import's source
	// URL and its dump's home): all rewritten in ONE pass over the tables.
	$olds = preg_split('/ +/', trim(pressluft_opt($opts, 'old')));
	$new = pressluft_opt($opts, 'new');
	foreach (array_merge($olds, array($new)) as $url) {
		// No quotes, backslashes, angle brackets or whitespace: the new URL is written into HTML,
		// JSON and SQL-adjacent text.
		if (!preg_match('#^https?://[^/\s]+#', $url) || preg_match('/[\s"\'<>\\\\]/', $url)) {
			pressluft_fail(($url === $new ? '--new' : '--old') . ' must be an http(s) URL', array(), 2);
		}
	}
	// Without trailing slashes on both sides: "http://old/" -> "http://new" would glue paths.
	$new = rtrim($new, '/');
	$olds = array_values(array_diff(array_unique(array_map(function ($u) {
		return rtrim($u, '/');
	}, $olds)), array($new)));
	$old = implode(' ', $olds);
	$dry = isset($opts['dry-run']) && !in_array($opts['dry-run'], array('0', 'false', 'no'), true);
	// --lean: the tables only, without loading WordPress (~0.15 s less: a clone's copy, whose
	// object cache and page cache the caller empties afterwards); see Pressluft_Lean_DB.
	$lean = isset($opts['lean']);
	global $wpdb;
	if ($lean) {
		$wpdb = Pressluft_Lean_DB::open($path);
	} else {
		pressluft_load_wordpress($path, $opts, false);
		if (!is_blog_installed()) {
			pressluft_fail('WordPress is not installed', array('installed' => false));
		}
	}
	$needles = array();
	foreach ($olds as $o) {
		$needles = array_merge($needles, pressluft_prefilter_needles($o, pressluft_replace_forms($o, $new)));
	}
	$needles = array_values(array_unique($needles));
	$result = array('old' => $old, 'new' => $new, 'tables' => 0, 'rows_changed' => 0, 'replacements' => 0,
		'skipped_tables' => array(), 'changed_tables' => new stdClass(), 'dry_run' => $dry);
	$errors = array();
	if ($olds === array()) {
		pressluft_ok($result);
	}
	// base_prefix: on a multisite the sites' tables (wp_2_posts) too; the same as prefix otherwise.
	$prefix = isset($wpdb->base_prefix) && $wpdb->base_prefix !== '' ? $wpdb->base_prefix : $wpdb->prefix;
	// --table-prefix P: only the tables named P* (a promotion's temporary copies); the live
	// options, rewrite rules and caches are then left alone.
	$only = pressluft_opt($opts, 'table-prefix', false);
	if ($only !== null) {
		if (!preg_match('/^[A-Za-z0-9_]{1,32}$/', $only)) {
			pressluft_fail('--table-prefix must match [A-Za-z0-9_]{1,32}', array(), 2);
		}
		$prefix = $only;
		$result['table_prefix'] = $only;
	}
	// Batched updates bypass wpdb's per-value charset checks: only when the new URL is plain ASCII
	// (every value then stays representable in the column it was read from).
	$batchable = !preg_match('/[^\x20-\x7e]/', $new);
	$listed = $wpdb->get_results($wpdb->prepare('SHOW FULL TABLES LIKE %s', $wpdb->esc_like($prefix) . '%'), ARRAY_N);
	if (!is_array($listed) || ($wpdb->last_error !== '' && $wpdb->last_error !== null)) {
		pressluft_fail('cannot list the tables: ' . $wpdb->last_error);
	}
	// diagnostics: milliseconds from the process start until the tables are listed, and per
	// table (those over 10 ms)
	$started = isset($_SERVER['REQUEST_TIME_FLOAT']) ? (float) $_SERVER['REQUEST_TIME_FLOAT'] : microtime(true);
	$result['timings_ms'] = array('start' => (int) round((microtime(true) - $started) * 1000), 'tables' => new stdClass());
	foreach ($listed as $listed_row) {
		if (isset($listed_row[1]) && $listed_row[1] !== 'BASE TABLE') {
			continue; // views show their tables' rows
		}
		$table = $listed_row[0];
		$table_started = microtime(true);
		$result['tables']++;
		$t = pressluft_sql_ident($table);
		$t_plain = '`' . str_replace('`', '``', $table) . '`'; // not passed through prepare()
		$columns = $wpdb->get_results("SHOW COLUMNS FROM $t_plain", ARRAY_A);
		if (!is_array($columns) || $columns === array()) {
			$errors[] = "$table: cannot read its columns: " . $wpdb->last_error;
			continue;
		}
		$text = array();
		foreach ($columns as $col) {
			if (preg_match('/^(?:var)?char\b|^(?:tiny|medium|long)?text\b|^json\b|^(?:tiny|medium|long)?blob\b/i', $col['Type'])) {
				$text[] = $col['Field'];
			}
		}
		if ($text === array()) {
			continue;
		}
		$keys = $wpdb->get_results("SHOW KEYS FROM $t_plain WHERE Key_name = 'PRIMARY'", ARRAY_A);
		$pk = array();
		if (is_array($keys)) {
			usort($keys, function ($a, $b) {
				return (int) $a['Seq_in_index'] - (int) $b['Seq_in_index'];
			});
			foreach ($keys as $k) {
				$pk[] = $k['Column_name'];
			}
		}
		if ($pk === array()) {
			$result['skipped_tables'][] = $table;
			continue;
		}
		// Rows where any text column holds any form of $old, compared as bytes (what
		// pressluft_replace_in_value's strpos finds; ~3x faster than a collation-aware LIKE).
		// Every form contains the host name (pressluft_prefilter_needles): one LIKE per column
		// instead of one per form and column; PHP then tells the forms apart.
		$match = array();
		$args = array();
		foreach ($text as $c) {
			foreach ($needles as $needle) {
				$match[] = 'CAST(' . pressluft_sql_ident($c) . ' AS BINARY) LIKE %s';
				$args[] = '%' . $wpdb->esc_like((string) $needle) . '%';
			}
		}
		$pk_sql = implode(', ', array_map('pressluft_sql_ident', $pk));
		$select = implode(', ', array_map('pressluft_sql_ident', array_values(array_unique(array_merge($pk, $text)))));
		// Keyset pagination by primary key: rows still match after their update when $new
		// contains $old, and an offset would skip rows.
		$last = null;
		$changed_here = 0;
		$rewritten_keys = array(); // rows whose primary key was rewritten: not to be visited again
		while (true) {
			$where = '(' . implode(' OR ', $match) . ')';
			$page_args = $args;
			if ($last !== null) {
				$where .= count($pk) === 1
					? ' AND ' . $pk_sql . ' > %s'
					: ' AND (' . $pk_sql . ') > (' . implode(', ', array_fill(0, count($pk), '%s')) . ')';
				$page_args = array_merge($page_args, $last);
			}
			$sql = $wpdb->prepare("SELECT $select FROM $t WHERE $where ORDER BY $pk_sql LIMIT 200", $page_args);
			$rows = $wpdb->get_results($sql, ARRAY_A);
			if (!is_array($rows) || ($wpdb->last_error !== '' && $wpdb->last_error !== null)) {
				$errors[] = "$table: select failed: " . $wpdb->last_error;
				break;
			}
			// one commit per page of updates, not one per row (InnoDB: one log flush instead of
			// up to 200); a failed update is reported and skipped as before
			if (!$dry) {
				$wpdb->query('START TRANSACTION');
			}
			$batch = array(); // column => list of (primary key, new value)
			foreach ($rows as $row) {
				$where_pk = array();
				foreach ($pk as $c) {
					$where_pk[$c] = $row[$c];
				}
				$last = array_values($where_pk);
				if (isset($rewritten_keys[json_encode($last)])) {
					continue;
				}
				$update = array();
				$n = 0;
				foreach ($text as $c) {
					if ($row[$c] === null) {
						continue;
					}
					$replaced = $row[$c];
					foreach ($olds as $o) {
						$replaced = pressluft_replace_in_value($replaced, $o, $new, $n);
					}
					if ($replaced !== $row[$c]) {
						$update[$c] = $replaced;
					}
				}
				if ($update === array()) {
					continue;
				}
				if (!$dry && $batchable && count($pk) === 1 && !isset($update[$pk[0]])) {
					// batched: one UPDATE per column and page (below) instead of one per row
					foreach ($update as $c => $v) {
						$batch[$c][] = array($where_pk[$pk[0]], $v);
					}
				} elseif (!$dry) {
					$done = $wpdb->update($table, $update, $where_pk);
					if ($done === false) {
						$errors[] = "$table: update of row " . json_encode($where_pk) . ' failed: ' . ($wpdb->last_error !== '' ? $wpdb->last_error : 'rejected by wpdb (invalid data for the column?)');
						continue;
					}
				}
				$result['rows_changed']++;
				$result['replacements'] += $n;
				$changed_here++;
				if (array_intersect_key($update, $where_pk) !== array()) {
					$rewritten_keys[json_encode(array_values(array_merge($where_pk, array_intersect_key($update, $where_pk))))] = true;
				}
			}
			foreach ($batch as $c => $pairs) {
				// UPDATE t SET c = CASE pk WHEN k1 THEN v1 ... END WHERE pk IN (k1, ...): the rows of
				// a page in one statement (800 single-row UPDATEs cost ~0.2 s on a 50 MB table)
				$cases = '';
				$keys = array();
				$bargs = array();
				foreach ($pairs as $pair) {
					$cases .= ' WHEN %s THEN %s';
					$bargs[] = (string) $pair[0];
					$bargs[] = $pair[1];
				}
				foreach ($pairs as $pair) {
					$keys[] = '%s';
					$bargs[] = (string) $pair[0];
				}
				$col = pressluft_sql_ident($c);
				$sql = $wpdb->prepare("UPDATE $t SET $col = CASE $pk_sql$cases ELSE $col END WHERE $pk_sql IN (" . implode(', ', $keys) . ')', $bargs);
				if ($wpdb->query($sql) === false) {
					$errors[] = "$table: update of " . count($pairs) . " rows ($c) failed: " . $wpdb->last_error;
				}
			}
			if (!$dry && $wpdb->query('COMMIT') === false) {
				$errors[] = "$table: commit failed: " . $wpdb->last_error;
				break;
			}
			if (count($rows) < 200) {
				break;
			}
		}
		if ($changed_here > 0) {
			$result['changed_tables']->{$table} = $changed_here;
		}
		$table_ms = (int) round((microtime(true) - $table_started) * 1000);
		if ($table_ms > 10) {
			$result['timings_ms']['tables']->{$table} = $table_ms;
		}
	}
	$result['timings_ms']['total'] = (int) round((microtime(true) - $started) * 1000);
	if (!$dry && $only === null && $lean) {
		// what flush_rewrite_rules(false) does first: WordPress rebuilds the rules when it next runs
		$wpdb->query("DELETE FROM {$wpdb->options} WHERE option_name = 'rewrite_rules'");
		foreach (array('home', 'siteurl') as $name) {
			$raw = $wpdb->get_var($wpdb->prepare("SELECT option_value FROM {$wpdb->options} WHERE option_name = %s", $name));
			if (is_string($raw) && in_array(rtrim($raw, '/'), $olds, true)) {
				$wpdb->update($wpdb->options, array('option_value' => $new), array('option_name' => $name));
			}
		}
		$result['object_cache'] = 'not flushed (--lean: the caller empties the caches)';
	} elseif (!$dry && $only === null) {
		// Database rows were written behind the caches' back: drop the request's cache so the
		// options below are read from the database. A persistent object cache is left alone.
		if (wp_using_ext_object_cache()) {
			$result['object_cache'] = 'persistent object cache not flushed: it may hold old values until flushed';
		} else {
			wp_cache_flush();
			$result['object_cache'] = 'flushed';
		}
		foreach (array('home', 'siteurl') as $name) {
			$raw = $wpdb->get_var($wpdb->prepare("SELECT option_value FROM {$wpdb->options} WHERE option_name = %s", $name));
			if (is_string($raw) && in_array(rtrim($raw, '/'), $olds, true)) {
				update_option($name, $new);
			}
		}
		flush_rewrite_rules(false);
	}
	foreach (array('home' => 'WP_HOME', 'siteurl' => 'WP_SITEURL') as $name => $constant) {
		if ($lean ? $wpdb->config_defines($constant) : defined($constant)) {
			$result['warnings'][] = "$constant is defined in wp-config.php and overrides the $name option";
		}
	}
	if ($errors !== array()) {
		pressluft_fail('search-replace failed for some rows or tables', $result + array('errors' => $errors));
	}
	pressluft_ok($result);
}

// ------------------------------------------------------------------ main ------------------------
list($opts, $pos) = pressluft_parse_args($argv);
$command = isset($pos[0]) ? $pos[0] : null;
Pressluft_Helper_Result::$command = $command;
if (isset($opts['version'])) {
	pressluft_ok(array('version' => PRESSLUFT_HELPER_VERSION));
}
$path = isset($opts['path']) && is_string($opts['path']) ? rtrim($opts['path'], '/') : getcwd();
if ($path === false || !is_dir($path)) {
	pressluft_fail('--path must name the WordPress directory', array(), 2);
}
$path = realpath($path);

switch ($command) {
	case 'install':
		pressluft_cmd_install($path, $opts);
		break;
	case 'is-installed':
		pressluft_cmd_is_installed($path, $opts);
		break;
	case 'db-ping':
		pressluft_cmd_db_ping($path, $opts);
		break;
	case 'option-get':
		pressluft_cmd_option_get($path, $opts, $pos);
		break;
	case 'login-token':
		pressluft_cmd_login_token($path, $opts);
		break;
	case 'db-upgrade':
		pressluft_cmd_db_upgrade($path, $opts);
		break;
	case 'search-replace':
		pressluft_cmd_search_replace($path, $opts);
		break;
	case 'ensure-admin':
		pressluft_cmd_ensure_admin($path, $opts);
		break;
	case 'replace-string':
		pressluft_cmd_replace_string($opts);
		break;
	default:
		pressluft_fail('usage: pressluft-helper.php --path=DIR install|is-installed|db-ping|option-get|db-upgrade|login-token|ensure-admin|search-replace|replace-string ...', array(), 2);
}
pressluft_fail('command ended without a result');
