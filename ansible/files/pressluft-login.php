<?php
/**
 * Plugin Name: Pressluft one-time login
 * Description: Signs a user in with a one-time token created by Pressluft's helper (login-token). Managed by Pressluft; changes are overwritten.
 * Version: 1
 */

defined('ABSPATH') || exit;

/** Storage key of a token: only a hash of the token is stored. */
function pressluft_login_transient_key($token)
{
	return 'pressluft_login_' . substr(hash('sha256', (string) $token), 0, 40);
}

function pressluft_login_reject()
{
	nocache_headers();
	wp_die(
		esc_html__('This login link is invalid or has expired.'),
		esc_html__('Login link'),
		array('response' => 403, 'back_link' => false)
	);
}

function pressluft_login_consume()
{
	if (!isset($_GET['pressluft_login'])) {
		return;
	}
	$token = $_GET['pressluft_login'];
	if (!is_string($token) || !preg_match('/^[0-9a-f]{64}$/', $token)) {
		pressluft_login_reject();
	}
	$key = pressluft_login_transient_key($token);
	$data = get_transient($key);
	// delete_transient() succeeds for exactly one request: the token is used once.
	if (!is_array($data) || !delete_transient($key)) {
		pressluft_login_reject();
	}
	if (empty($data['expires']) || (int) $data['expires'] < time() || empty($data['user_id'])) {
		pressluft_login_reject();
	}
	$user = get_user_by('id', (int) $data['user_id']);
	if (!$user) {
		pressluft_login_reject();
	}
	wp_set_current_user($user->ID);
	wp_set_auth_cookie($user->ID, false, is_ssl());
	do_action('wp_login', $user->user_login, $user);
	nocache_headers();
	wp_safe_redirect(admin_url());
	exit;
}

add_action('init', 'pressluft_login_consume', 1);
