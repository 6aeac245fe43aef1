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
 *   login-token --user U [--ttl 60]
 *                       Create a one-time login token (consumed by the mu-plugin pressluft-login.php)
 *                       and print the login URL.
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
			} elseif (in_array(substr($a, 2), array('allow-http', 'version'), true)) {
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

/** Connect like WordPress does (host, host:port, host:/socket, localhost = socket). */
function pressluft_db_ping(array $cfg)
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
	default:
		pressluft_fail('usage: pressluft-helper.php --path=DIR install|is-installed|db-ping|option-get|login-token ...', array(), 2);
}
pressluft_fail('command ended without a result');
