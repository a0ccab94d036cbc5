# lab/mysql/mysql.mk — included by the top Makefile.
#
#   make mysql                       install MySQL (Debian sid's mysql-server-core and
#                                    mysql-client-core) into .lab/mysql for tests and the lab
#   FLOW_MYSQL_HOME=DIR make mysql   install into DIR instead; lab/mysqld finds it
#                                    there through the same variable
#
# The install is private (nothing goes into the system) and idempotent: a
# second run only prints what is installed.

LAB_MYSQL_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
FLOW_MYSQL_HOME ?= $(CURDIR)/.lab/mysql

.PHONY: mysql
mysql:
	@$(LAB_MYSQL_DIR)/install.sh "$(FLOW_MYSQL_HOME)"
