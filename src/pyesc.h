/*
 * pyesc.h -- Python's string escapes, as pickle's text opcodes carry them.
 *
 * Pure core, used by the pickle decoder (src/pickle.c) for the STRING
 * opcode (a Python 2 string literal) and the UNICODE opcode
 * (raw-unicode-escape).  No allocation: the caller gives the room.
 */
#ifndef ORCHESTER_PYESC_H
#define ORCHESTER_PYESC_H

#include <stddef.h>
#include <stdint.h>

/* pyesc_string: the body of a Python 2 string literal s/n (the quotes
 * removed) with its backslash escapes decoded as Python's escape_decode
 * does (\\ \' \" \a \b \f \n \r \t \v \xHH, octal \OOO; an unknown escape
 * stays as written).  t has room for n bytes.  Returns the bytes written,
 * or -1 when the text is malformed (a trailing backslash, a short \x). */
long pyesc_string(const unsigned char *s, size_t n, unsigned char *t);

/* pyesc_raw_unicode: raw-unicode-escape text s/n as UTF-8: every byte is a
 * Latin-1 code point, and \uXXXX or \UXXXXXXXX after an odd run of
 * backslashes is an escape.  t has room for 2 * n bytes.  Returns the bytes
 * written, or -1 when an escape is malformed or beyond U+10FFFF. */
long pyesc_raw_unicode(const unsigned char *s, size_t n, unsigned char *t);

/* pyesc_utf8: the UTF-8 of code point cp into t (room for 4 bytes);
 * returns its length. */
size_t pyesc_utf8(unsigned char *t, uint32_t cp);

#endif
